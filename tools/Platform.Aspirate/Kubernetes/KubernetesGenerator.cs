using Platform.Aspirate.Manifest;
using Map = System.Collections.Generic.OrderedDictionary<string, object?>;

namespace Platform.Aspirate.Kubernetes;

/// <summary>A file the generator writes: path relative to the output directory, and its objects.</summary>
/// <param name="Path">Relative path with '/' separators.</param>
/// <param name="Documents">YAML documents (one per object).</param>
public sealed record GeneratedFile(string Path, IReadOnlyList<Map> Documents);

/// <summary>
/// Turns Aspire's manifest into Aspirate's kustomize layout: per workload a folder with a Deployment (projects, containers
/// without volumes) or a StatefulSet with PVCs (containers with volumes), a ClusterIP Service, a ServiceAccount and a
/// kustomization whose configMapGenerator holds the non-secret environment; secrets are <c>secretKeyRef</c>s. Unlike
/// Aspirate it also writes probes, restricted security contexts, RollingUpdate with no unavailability, and two components
/// derived from the manifest: the NetworkPolicy allow-list of its references and the ExternalSecrets of its secret
/// parameters. Nothing depends on the machine or the manifest's location, so the output can be checked for drift.
/// </summary>
public static class KubernetesGenerator
{
    /// <summary>Label that selects a resource's pods.</summary>
    public const string NameLabel = "app.kubernetes.io/name";

    /// <summary>Folder of the generated NetworkPolicy allow-list component.</summary>
    public const string NetworkPoliciesFolder = "network-policies";

    /// <summary>Folder of the generated ExternalSecrets component.</summary>
    public const string ExternalSecretsFolder = "external-secrets";

    /// <summary>Key under which each generated Secret holds its value.</summary>
    public const string SecretKey = "value";

    /// <summary>Annotation that makes Reloader roll a workload when one of its Secrets changes.</summary>
    public const string ReloadAnnotation = "secret.reloader.stakater.com/reload";

    /// <summary>Generates every file for <paramref name="manifest"/>.</summary>
    /// <exception cref="ManifestException">The manifest or the options cannot be deployed; the message names the field.</exception>
    public static IReadOnlyList<GeneratedFile> Generate(AspireManifest manifest, GenerateOptions options)
    {
        options.Validate();
        foreach (var name in options.Parameters.Keys)
        {
            if (manifest.Find(name) is not ParameterResource p)
            {
                throw new ManifestException($"--parameter {name}: the manifest has no parameter of that name");
            }

            if (p.Inputs.Values.Any(i => i.Secret))
            {
                throw new ManifestException($"--parameter {name}: the parameter is secret; its value comes from the secret store, never the command line");
            }
        }

        var resolver = new ExpressionResolver(manifest, options.Parameters);
        var workloads = manifest.Workloads.Select(w => Workload.From(w, resolver, options)).ToList();
        var files = workloads.SelectMany(w => w.Files(options)).ToList();
        files.AddRange(NetworkPolicies(workloads));
        files.AddRange(ExternalSecrets(workloads, options));
        files.Add(new GeneratedFile("namespace.yaml", [Namespace(options)]));
        files.Add(new GeneratedFile("kustomization.yaml",
            [Kustomization("Kustomization", ["namespace.yaml", .. workloads.Select(w => w.Name)], options.Namespace)]));
        return files;
    }

    private static Map Namespace(GenerateOptions options) => new()
    {
        ["apiVersion"] = "v1",
        ["kind"] = "Namespace",
        ["metadata"] = new Map
        {
            ["name"] = options.Namespace,
            // Every generated pod meets the "restricted" Pod Security Standard, so the namespace enforces it.
            ["labels"] = new Map
            {
                ["pod-security.kubernetes.io/enforce"] = "restricted",
                ["pod-security.kubernetes.io/enforce-version"] = "latest",
                ["pod-security.kubernetes.io/audit"] = "restricted",
                ["pod-security.kubernetes.io/warn"] = "restricted",
            },
        },
    };

    internal static Map Kustomization(string kind, IEnumerable<string> resources, string? ns = null, Map? extra = null)
    {
        var map = new Map
        {
            ["apiVersion"] = kind == "Component" ? "kustomize.config.k8s.io/v1alpha1" : "kustomize.config.k8s.io/v1beta1",
            ["kind"] = kind,
        };
        if (ns is not null)
        {
            map["namespace"] = ns;
        }

        map["resources"] = resources.Cast<object?>().ToList();
        foreach (var (k, v) in extra ?? [])
        {
            map[k] = v;
        }

        return map;
    }

    internal static Map Metadata(string name, string resourceName) => new() { ["name"] = name, ["labels"] = Labels(resourceName) };

    internal static Map Labels(string resourceName) => new()
    {
        [NameLabel] = resourceName,
        ["app.kubernetes.io/part-of"] = "platform",
        ["app.kubernetes.io/managed-by"] = "platform-aspirate",
    };

    internal static Map Selector(string resourceName) => new() { [NameLabel] = resourceName };

    // One egress policy per client and one ingress policy per server, both listing exactly the pod ports the client's
    // configuration points at: a reference added in the AppHost adds its edge here.
    private static IEnumerable<GeneratedFile> NetworkPolicies(List<Workload> workloads)
    {
        var edges = workloads
            .SelectMany(client => client.Peers.Select(p =>
                (Client: client.Name, Server: p.Resource.Name, Port: Ports.Target(p.Resource, p.Binding), Protocol: Workload.Protocol(p.Binding))))
            .Distinct()
            .ToList();
        var files = new List<GeneratedFile>();
        foreach (var client in workloads.Where(w => edges.Any(e => e.Client == w.Name)))
        {
            var rules = edges.Where(e => e.Client == client.Name).GroupBy(e => e.Server).Select(g => (object?)new Map
            {
                ["to"] = new List<object?> { new Map { ["podSelector"] = new Map { ["matchLabels"] = Selector(g.Key) } } },
                ["ports"] = PolicyPorts(g),
            }).ToList();
            files.Add(new GeneratedFile($"{NetworkPoliciesFolder}/{client.Name}-egress.yaml",
                [Policy($"{client.Name}-egress", client.Name, "Egress", "egress", rules)]));
        }

        foreach (var server in workloads.Where(w => edges.Any(e => e.Server == w.Name)))
        {
            var rules = edges.Where(e => e.Server == server.Name).GroupBy(e => e.Client).Select(g => (object?)new Map
            {
                ["from"] = new List<object?> { new Map { ["podSelector"] = new Map { ["matchLabels"] = Selector(g.Key) } } },
                ["ports"] = PolicyPorts(g),
            }).ToList();
            files.Add(new GeneratedFile($"{NetworkPoliciesFolder}/{server.Name}-ingress.yaml",
                [Policy($"{server.Name}-ingress", server.Name, "Ingress", "ingress", rules)]));
        }

        files.Add(new GeneratedFile($"{NetworkPoliciesFolder}/kustomization.yaml",
            [Kustomization("Component", files.Select(f => f.Path[(NetworkPoliciesFolder.Length + 1)..]))]));
        return files;

        static List<object?> PolicyPorts(IEnumerable<(string Client, string Server, int Port, string Protocol)> ports) =>
            ports.Select(p => (p.Protocol, p.Port)).Distinct().OrderBy(p => p.Port).ThenBy(p => p.Protocol, StringComparer.Ordinal)
                .Select(p => (object?)new Map { ["protocol"] = p.Protocol, ["port"] = p.Port }).ToList();

        static Map Policy(string name, string resourceName, string type, string key, List<object?> rules) => new()
        {
            ["apiVersion"] = "networking.k8s.io/v1",
            ["kind"] = "NetworkPolicy",
            ["metadata"] = Metadata(name, resourceName),
            ["spec"] = new Map
            {
                ["podSelector"] = new Map { ["matchLabels"] = Selector(resourceName) },
                ["policyTypes"] = new List<object?> { type },
                [key] = rules,
            },
        };
    }

    // Every secret some pod reads becomes a Secret of that name, synced from the store; a filtered one (an
    // annotated.string) is the parameter's entry passed through the filter by External Secrets' template.
    private static IEnumerable<GeneratedFile> ExternalSecrets(List<Workload> workloads, GenerateOptions options)
    {
        var secrets = workloads.SelectMany(w => w.Secrets).DistinctBy(s => s.Name).ToList();
        var files = secrets.Select(s =>
        {
            var target = new Map { ["name"] = s.Name, ["creationPolicy"] = "Owner", ["deletionPolicy"] = "Retain" };
            if (s.Filter == "uri")
            {
                // Go's urlquery percent-encodes everything outside [A-Za-z0-9-_.~] (space as '+'; generated values have none).
                target["template"] = new Map
                {
                    ["engineVersion"] = "v2",
                    ["data"] = new Map { [SecretKey] = $"{{{{ .{SecretKey} | urlquery }}}}" },
                };
            }

            return new GeneratedFile($"{ExternalSecretsFolder}/{s.Name}.yaml",
            [
                new Map
                {
                    ["apiVersion"] = "external-secrets.io/v1",
                    ["kind"] = "ExternalSecret",
                    ["metadata"] = new Map { ["name"] = s.Name, ["labels"] = new Map { ["app.kubernetes.io/part-of"] = "platform" } },
                    ["spec"] = new Map
                    {
                        ["refreshInterval"] = "1h",
                        ["secretStoreRef"] = new Map { ["kind"] = "ClusterSecretStore", ["name"] = options.SecretStore },
                        ["target"] = target,
                        ["data"] = new List<object?>
                        {
                            new Map { ["secretKey"] = SecretKey, ["remoteRef"] = new Map { ["key"] = options.SecretKeyPrefix + s.Parameter } },
                        },
                    },
                },
            ]);
        }).ToList();
        files.Add(new GeneratedFile($"{ExternalSecretsFolder}/kustomization.yaml",
            [Kustomization("Component", files.Select(f => f.Path[(ExternalSecretsFolder.Length + 1)..]))]));
        return files;
    }
}
