using System.Text.Json;
using System.Text.Json.Nodes;

namespace Platform.Aspirate.Manifest;

/// <summary>A manifest the generator cannot turn into Kubernetes objects; the message names the resource and field.</summary>
public sealed class ManifestException(string message) : Exception(message);

/// <summary>
/// Aspire's deployment manifest (<c>--publisher manifest</c>), the resource types Platform deploys: <c>project.v0/v1</c>,
/// <c>container.v0/v1</c> and <c>dockerfile.v0</c> (workloads), <c>parameter.v0</c>, <c>value.v0</c> (also what Aspire 13
/// writes for a conditional expression, already evaluated) and <c>annotated.string</c> (a parameter with a filter).
/// Resources keep the manifest's order, so everything generated from them is ordered the same way on every run.
/// </summary>
public sealed class AspireManifest
{
    private readonly Dictionary<string, ManifestResource> _byName;

    private AspireManifest(IReadOnlyList<ManifestResource> resources)
    {
        Resources = resources;
        _byName = resources.ToDictionary(r => r.Name, StringComparer.Ordinal);
    }

    /// <summary>Every resource, in manifest order.</summary>
    public IReadOnlyList<ManifestResource> Resources { get; }

    /// <summary>The deployable resources (projects and containers), in manifest order.</summary>
    public IEnumerable<WorkloadResource> Workloads => Resources.OfType<WorkloadResource>();

    /// <summary>The resource named <paramref name="name"/>, or null.</summary>
    public ManifestResource? Find(string name) => _byName.GetValueOrDefault(name);

    /// <summary>Reads a manifest file.</summary>
    public static async Task<AspireManifest> LoadAsync(string path, CancellationToken cancellationToken)
    {
        await using var stream = File.OpenRead(path);
        var node = await JsonNode.ParseAsync(stream, cancellationToken: cancellationToken).ConfigureAwait(false);
        return Parse(node);
    }

    /// <summary>Parses manifest JSON text.</summary>
    public static AspireManifest Parse(string json) => Parse(JsonNode.Parse(json));

    private static AspireManifest Parse(JsonNode? root)
    {
        if (root?["resources"] is not JsonObject resources)
        {
            throw new ManifestException("The manifest has no 'resources' object: is this the file --publisher manifest wrote?");
        }

        var parsed = new List<ManifestResource>();
        foreach (var (name, node) in resources)
        {
            if (node is not JsonObject r)
            {
                throw new ManifestException($"resources.{name}: expected an object");
            }

            var at = new Field($"resources.{name}", r);
            var type = at.RequiredString("type");
            parsed.Add(type switch
            {
                "project.v0" or "project.v1" => ParseWorkload(name, type, at, WorkloadKind.Project),
                "container.v0" => ParseWorkload(name, type, at, WorkloadKind.Container),
                "container.v1" => ParseWorkload(name, type, at, r["image"] is null ? WorkloadKind.Build : WorkloadKind.Container),
                "dockerfile.v0" => ParseWorkload(name, type, at, WorkloadKind.Build),
                "parameter.v0" => ParseParameter(name, at),
                "value.v0" => new ValueResource(name, at.RequiredString("connectionString")),
                "annotated.string" => new AnnotatedStringResource(name, at.RequiredString("value"), at.RequiredString("filter")),
                "executable.v0" => throw new ManifestException(
                    $"resources.{name}: an executable cannot be deployed to Kubernetes; give it an image (a container or a project) in publish mode"),
                _ => throw new ManifestException($"resources.{name}.type: '{type}' is not a resource type this generator deploys"),
            });
        }

        return new AspireManifest(parsed);
    }

    private static WorkloadResource ParseWorkload(string name, string type, Field at, WorkloadKind kind)
    {
        if (at.Node["bindMounts"] is JsonArray { Count: > 0 })
        {
            throw new ManifestException($"resources.{name}.bindMounts: a host directory cannot be mounted into a pod; use a volume");
        }

        var bindings = new List<Binding>();
        foreach (var (bindingName, node) in at.Object("bindings"))
        {
            var b = at.Child($"bindings.{bindingName}", node);
            bindings.Add(new Binding(
                bindingName,
                b.RequiredString("scheme"),
                b.RequiredString("protocol"),
                b.RequiredString("transport"),
                b.Int("port"),
                b.Int("targetPort"),
                b.Bool("external") ?? false,
                b.Bool("tlsEnabled")));
        }

        var volumes = new List<Volume>();
        foreach (var (node, i) in at.Array("volumes").Select((n, i) => (n, i)))
        {
            var v = at.Child($"volumes[{i}]", node);
            volumes.Add(new Volume(v.RequiredString("name"), v.RequiredString("target"), v.Bool("readOnly") ?? false));
        }

        var env = at.Object("env").Select(kv => KeyValuePair.Create(kv.Key, Text($"{at.Path}.env.{kv.Key}", kv.Value))).ToList();
        var args = at.Array("args").Select((a, i) => Text($"{at.Path}.args[{i}]", a)).ToList();
        return new WorkloadResource(name, type, kind,
            kind == WorkloadKind.Container ? at.RequiredString("image") : null,
            at.String("entrypoint"), args, env, bindings, volumes, at.String("connectionString"));
    }

    private static ParameterResource ParseParameter(string name, Field at)
    {
        var inputs = new Dictionary<string, ParameterInput>(StringComparer.Ordinal);
        foreach (var (inputName, node) in at.Object("inputs"))
        {
            var i = at.Child($"inputs.{inputName}", node);
            var type = i.String("type") ?? "string";
            if (type != "string")
            {
                throw new ManifestException($"resources.{name}.inputs.{inputName}.type: '{type}' is not supported (only string)");
            }

            var d = i.Node["default"] is JsonObject def ? i.Child("default", def) : null;
            GenerateInput? generate = null;
            if (d?.Node["generate"] is JsonObject g)
            {
                var gen = d.Child("generate", g);
                generate = new GenerateInput(gen.Int("minLength") ?? 22, gen.Bool("special") ?? true);
            }

            inputs[inputName] = new ParameterInput(i.Bool("secret") ?? false, d?.String("value"), generate);
        }

        return new ParameterResource(name, at.RequiredString("value"), at.String("connectionString"), inputs);
    }

    private static string Text(string path, JsonNode? node) => node is JsonValue v && v.GetValueKind() == JsonValueKind.String
        ? v.GetValue<string>()
        : throw new ManifestException($"{path}: expected a string");

    // Reads typed fields and says where a wrong one is.
    private sealed record Field(string Path, JsonObject Node)
    {
        public Field Child(string name, JsonNode? node) => node is JsonObject o
            ? new Field($"{Path}.{name}", o)
            : throw new ManifestException($"{Path}.{name}: expected an object");

        public string RequiredString(string name) =>
            String(name) ?? throw new ManifestException($"{Path}.{name}: required");

        public string? String(string name) => Node[name] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
            _ => throw new ManifestException($"{Path}.{name}: expected a string"),
        };

        public int? Int(string name) => Node[name] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<int>(out var i) => i,
            _ => throw new ManifestException($"{Path}.{name}: expected an integer"),
        };

        public bool? Bool(string name) => Node[name] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
            _ => throw new ManifestException($"{Path}.{name}: expected true or false"),
        };

        public JsonObject Object(string name) => Node[name] switch
        {
            null => [],
            JsonObject o => o,
            _ => throw new ManifestException($"{Path}.{name}: expected an object"),
        };

        public JsonArray Array(string name) => Node[name] switch
        {
            null => [],
            JsonArray a => a,
            _ => throw new ManifestException($"{Path}.{name}: expected an array"),
        };
    }
}

/// <summary>One entry of the manifest's <c>resources</c>.</summary>
/// <param name="Name">The resource name (the key in <c>resources</c>).</param>
public abstract record ManifestResource(string Name);

/// <summary>How a workload's image is found.</summary>
public enum WorkloadKind
{
    /// <summary>A .NET project: its image is built by the release pipeline and named after the resource.</summary>
    Project,

    /// <summary>A container with an image reference.</summary>
    Container,

    /// <summary>A container built from a Dockerfile: named like a project's image.</summary>
    Build,
}

/// <summary>A project or container: what becomes a Deployment or StatefulSet.</summary>
/// <param name="Name">Resource name.</param>
/// <param name="Type">Manifest type (<c>project.v0</c>, <c>container.v0</c>...).</param>
/// <param name="Kind">Where its image comes from.</param>
/// <param name="Image">Image reference of a container; null for built images.</param>
/// <param name="Entrypoint">Overrides the image's entrypoint.</param>
/// <param name="Args">Arguments, as manifest strings.</param>
/// <param name="Env">Environment, as manifest strings, in manifest order.</param>
/// <param name="Bindings">Endpoints, in manifest order.</param>
/// <param name="Volumes">Named volumes.</param>
/// <param name="ConnectionString">What <c>{name.connectionString}</c> means, when it has one.</param>
public sealed record WorkloadResource(
    string Name,
    string Type,
    WorkloadKind Kind,
    string? Image,
    string? Entrypoint,
    IReadOnlyList<string> Args,
    IReadOnlyList<KeyValuePair<string, string>> Env,
    IReadOnlyList<Binding> Bindings,
    IReadOnlyList<Volume> Volumes,
    string? ConnectionString) : ManifestResource(Name);

/// <summary>An endpoint of a workload.</summary>
/// <param name="Name">Binding name (also the Kubernetes port name).</param>
/// <param name="Scheme">URL scheme: http, https, tcp, redis...</param>
/// <param name="Protocol">tcp or udp.</param>
/// <param name="Transport">http, http2 or tcp.</param>
/// <param name="Port">Port clients use, when it differs from the target port.</param>
/// <param name="TargetPort">Port the process listens on.</param>
/// <param name="External">Marked external in the AppHost (exposure is the overlays' decision).</param>
/// <param name="TlsEnabled">Explicit TLS flag, when the manifest carries one.</param>
public sealed record Binding(string Name, string Scheme, string Protocol, string Transport, int? Port, int? TargetPort, bool External, bool? TlsEnabled)
{
    /// <summary>What <c>{r.bindings.b.tlsEnabled}</c> evaluates to: Aspire's default is TLS for https.</summary>
    public bool Tls => TlsEnabled ?? string.Equals(Scheme, "https", StringComparison.OrdinalIgnoreCase);
}

/// <summary>A named volume of a container.</summary>
/// <param name="Name">Volume name.</param>
/// <param name="Target">Mount path.</param>
/// <param name="ReadOnly">Mounted read-only.</param>
public sealed record Volume(string Name, string Target, bool ReadOnly);

/// <summary>A parameter (<c>parameter.v0</c>).</summary>
/// <param name="Name">Resource name.</param>
/// <param name="Value">Its value expression (normally <c>{name.inputs.value}</c>).</param>
/// <param name="ConnectionString">Set for <c>AddConnectionString</c> parameters.</param>
/// <param name="Inputs">Its inputs by name.</param>
public sealed record ParameterResource(string Name, string Value, string? ConnectionString, IReadOnlyDictionary<string, ParameterInput> Inputs)
    : ManifestResource(Name);

/// <summary>One input of a parameter.</summary>
/// <param name="Secret">Marked secret: its value never appears in the output.</param>
/// <param name="DefaultValue">A literal default.</param>
/// <param name="Generate">A generated default.</param>
public sealed record ParameterInput(bool Secret, string? DefaultValue, GenerateInput? Generate);

/// <summary>How Aspire generates a parameter's value in run mode.</summary>
/// <param name="MinLength">Minimum length.</param>
/// <param name="Special">Whether special characters may appear.</param>
public sealed record GenerateInput(int MinLength, bool Special);

/// <summary>A <c>value.v0</c>: a connection string made of other expressions (or a conditional's evaluated branch).</summary>
/// <param name="Name">Resource name.</param>
/// <param name="ConnectionString">The expression.</param>
public sealed record ValueResource(string Name, string ConnectionString) : ManifestResource(Name);

/// <summary>An <c>annotated.string</c>: a parameter's value with a filter applied (e.g. <c>uri</c>-encoded).</summary>
/// <param name="Name">Resource name.</param>
/// <param name="Value">The parameter expression.</param>
/// <param name="Filter">The filter.</param>
public sealed record AnnotatedStringResource(string Name, string Value, string Filter) : ManifestResource(Name);
