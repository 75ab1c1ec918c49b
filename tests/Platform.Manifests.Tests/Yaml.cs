using System.Globalization;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Platform.Manifests.Tests;

/// <summary>Reads multi-document YAML into JSON nodes, typing plain scalars the way Kubernetes does.</summary>
public static class Yaml
{
    public static List<JsonObject> ReadDocuments(string text)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        return stream.Documents
            .Where(d => d.RootNode is YamlMappingNode)
            .Select(d => (JsonObject)ToJson(d.RootNode)!)
            .ToList();
    }

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode m => new JsonObject(m.Children.Select(kv =>
            KeyValuePair.Create(((YamlScalarNode)kv.Key).Value!, ToJson(kv.Value)))),
        YamlSequenceNode s => new JsonArray(s.Children.Select(ToJson).ToArray()),
        YamlScalarNode { Style: ScalarStyle.Plain } p => Plain(p.Value ?? string.Empty),
        YamlScalarNode q => JsonValue.Create(q.Value),
        _ => throw new InvalidOperationException($"Unexpected YAML node {node.NodeType}"),
    };

    private static JsonNode? Plain(string v) => v switch
    {
        "" or "~" or "null" => null,
        "true" or "false" => JsonNode.Parse(v),
        // Parsed (element-backed) numbers convert to int, long or double on read.
        _ when long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _) => JsonNode.Parse(v),
        _ when v.Contains('.') && double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out _) && !v.EndsWith('.') => JsonNode.Parse(v),
        _ => JsonValue.Create(v),
    };
}
