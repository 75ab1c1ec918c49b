using System.Text.Json.Nodes;
using Platform.Aspirate.Kubernetes;
using Platform.Aspirate.Manifest;

namespace Platform.Manifests.Tests;

/// <summary>A generated kustomize base read back as objects, with lookups that name what is missing.</summary>
public sealed class GeneratedOutput(IReadOnlyDictionary<string, List<JsonObject>> files)
{
    public IReadOnlyDictionary<string, List<JsonObject>> Files { get; } = files;

    public IEnumerable<JsonObject> Objects => Files.Values.SelectMany(d => d);

    /// <summary>Generates from manifest JSON in memory, through the YAML text the tool writes.</summary>
    public static GeneratedOutput From(string manifestJson, GenerateOptions? options = null) =>
        new(OutputWriter.Render(KubernetesGenerator.Generate(AspireManifest.Parse(manifestJson), options ?? new GenerateOptions()))
            .ToDictionary(kv => kv.Key, kv => Yaml.ReadDocuments(kv.Value)));

    /// <summary>Reads a directory the tool wrote.</summary>
    public static GeneratedOutput Read(string root) =>
        new(Directory.EnumerateFiles(root, "*.yaml", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(root, f).Replace('\\', '/'), f => Yaml.ReadDocuments(File.ReadAllText(f))));

    public JsonObject Get(string kind, string name) =>
        Objects.SingleOrDefault(o => (string?)o["kind"] == kind && (string?)o["metadata"]?["name"] == name)
        ?? throw new Xunit.Sdk.XunitException($"{kind}/{name} was not generated (files: {string.Join(", ", Files.Keys.Order())})");

    /// <summary>The Deployment or StatefulSet of a workload.</summary>
    public JsonObject Workload(string name) =>
        Objects.SingleOrDefault(o => (string?)o["kind"] is "Deployment" or "StatefulSet" && (string?)o["metadata"]?["name"] == name)
        ?? throw new Xunit.Sdk.XunitException($"no Deployment or StatefulSet {name} was generated");

    public JsonObject Container(string name) => Workload(name)["spec"]!["template"]!["spec"]!["containers"]![0]!.AsObject();

    /// <summary>The pod's env entry named <paramref name="variable"/>, or null.</summary>
    public JsonObject? Env(string workload, string variable) =>
        (Container(workload)["env"]?.AsArray() ?? []).Select(e => e!.AsObject()).SingleOrDefault(e => (string?)e["name"] == variable);

    /// <summary>The ConfigMap literals of a workload's kustomization (<c>configMapGenerator</c>).</summary>
    public Dictionary<string, string> ConfigMap(string workload)
    {
        var kustomization = Files.GetValueOrDefault($"{workload}/kustomization.yaml")?.SingleOrDefault()
            ?? throw new Xunit.Sdk.XunitException($"{workload}/kustomization.yaml was not generated");
        var literals = kustomization["configMapGenerator"]?[0]?["literals"]?.AsArray() ?? [];
        return literals.Select(l => ((string)l!).Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
    }

    /// <summary>Whether the generated policies let <paramref name="from"/> reach <paramref name="to"/> on <paramref name="port"/>, both ways.</summary>
    public bool Allows(string from, string to, int port)
    {
        bool Has(string policy, string direction, string peerKey, string peer) =>
            Files.GetValueOrDefault($"network-policies/{policy}.yaml")?.Single()["spec"]?[direction]?.AsArray()
                .Any(r => (r![peerKey]?.AsArray() ?? []).Any(p => (string?)p!["podSelector"]?["matchLabels"]?["app.kubernetes.io/name"] == peer)
                          && (r["ports"]?.AsArray() ?? []).Any(p => (int?)p!["port"] == port)) == true;
        return Has($"{from}-egress", "egress", "to", to) && Has($"{to}-ingress", "ingress", "from", from);
    }
}
