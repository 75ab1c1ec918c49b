using Platform.Hosting.ApplicationModel;
using Map = System.Collections.Generic.OrderedDictionary<string, object?>;

namespace Platform.Hosting.Publishing.Kubernetes;

/// <summary>A file the Kubernetes publisher writes: path relative to the output directory, and its objects.</summary>
/// <param name="Path">Relative path with '/' separators.</param>
/// <param name="Documents">YAML documents (one per object).</param>
public sealed record GeneratedFile(string Path, IReadOnlyList<Map> Documents);

/// <summary>
/// Turns the model into Aspirate's kustomize layout: per resource a folder with a Deployment (projects)
/// or a StatefulSet with PVCs (containers with data volumes), a ClusterIP Service, a ServiceAccount and
/// a kustomization whose configMapGenerator holds the non-secret environment; secrets are
/// <c>secretKeyRef</c>s. Unlike Aspirate it also writes probes, restricted security contexts, pinned
/// image tags, RollingUpdate with no unavailability, and two components derived from the model: the
/// NetworkPolicy allow-list of its references and the ExternalSecrets of its secret parameters.
/// </summary>
public static class KubernetesGenerator
{
    /// <summary>Label that selects a resource's pods.</summary>
    public const string NameLabel = "app.kubernetes.io/name";

    /// <summary>Folder of the generated NetworkPolicy allow-list component.</summary>
    public const string NetworkPoliciesFolder = "network-policies";

    /// <summary>Folder of the generated ExternalSecrets component.</summary>
    public const string ExternalSecretsFolder = "external-secrets";

    /// <summary>Key under which each generated Secret holds its parameter's value.</summary>
    public const string SecretKey = "value";

    /// <summary>Annotation that makes Reloader roll a workload when one of its Secrets changes.</summary>
    public const string ReloadAnnotation = "secret.reloader.stakater.com/reload";

    /// <summary>Generates every file for <paramref name="resources"/>.</summary>
    public static IReadOnlyList<GeneratedFile> Generate(IEnumerable<IResource> resources,
        DistributedApplicationExecutionContext executionContext, KubernetesPublishingOptions options)
    {
        var workloads = new List<Workload>();
        foreach (var resource in resources)
        {
            switch (resource)
            {
                case ProjectResource or ContainerResource:
                    workloads.Add(Workload.From(resource, executionContext, options));
                    break;
                case ExecutableResource:
                    throw new DistributedApplicationException(
                        $"Executable '{resource.Name}' cannot be deployed to Kubernetes: give it an image (a container or a project).");
            }
        }

        var files = new List<GeneratedFile>();
        foreach (var w in workloads)
        {
            files.AddRange(w.Files(options));
        }

        files.AddRange(NetworkPolicies(workloads));
        files.AddRange(ExternalSecrets(workloads, options));
        files.Add(new GeneratedFile("namespace.yaml", [Namespace(options)]));
        files.Add(new GeneratedFile("kustomization.yaml",
        [
            Kustomization("Kustomization", ["namespace.yaml", .. workloads.Select(w => w.Name)], options.Namespace),
        ]));
        return files;
    }

    private static Map Namespace(KubernetesPublishingOptions options) => new()
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

        map["resources"] = resources.ToList();
        foreach (var (k, v) in extra ?? [])
        {
            map[k] = v;
        }

        return map;
    }

    internal static Map Metadata(string name, string resourceName, Map? annotations = null)
    {
        var map = new Map { ["name"] = name, ["labels"] = Labels(resourceName) };
        if (annotations is { Count: > 0 })
        {
            map["annotations"] = annotations;
        }

        return map;
    }

    internal static Map Labels(string resourceName) => new()
    {
        [NameLabel] = resourceName,
        ["app.kubernetes.io/part-of"] = "platform",
        ["app.kubernetes.io/managed-by"] = "platform-apphost",
    };

    internal static Map Selector(string resourceName) => new() { [NameLabel] = resourceName };

    // One egress policy per client and one ingress policy per server, both listing exactly the ports
    // the client's configuration points at: a reference added in the AppHost adds its edge here.
    private static IEnumerable<GeneratedFile> NetworkPolicies(List<Workload> workloads)
    {
        var byName = workloads.ToDictionary(w => w.Name);
        var edges = workloads
            .SelectMany(client => client.Peers
                .Where(p => p.Resource.Name != client.Name && byName.ContainsKey(p.Resource.Name))
                .Select(p => (Client: client.Name, Server: p.Resource.Name, Port: KubernetesValueRenderer.TargetPort(p.Resource, p.Endpoint))))
            .Distinct()
            .ToList();
        var files = new List<GeneratedFile>();
        foreach (var client in workloads.Where(w => edges.Any(e => e.Client == w.Name)))
        {
            var rules = edges.Where(e => e.Client == client.Name).GroupBy(e => e.Server).Select(g => (object?)new Map
            {
                ["to"] = new List<object?> { new Map { ["podSelector"] = new Map { ["matchLabels"] = Selector(g.Key) } } },
                ["ports"] = Ports(g.Select(e => e.Port)),
            }).ToList();
            files.Add(new GeneratedFile($"{NetworkPoliciesFolder}/{client.Name}-egress.yaml",
                [Policy($"{client.Name}-egress", client.Name, "Egress", "egress", rules)]));
        }

        foreach (var server in workloads.Where(w => edges.Any(e => e.Server == w.Name)))
        {
            var rules = edges.Where(e => e.Server == server.Name).GroupBy(e => e.Client).Select(g => (object?)new Map
            {
                ["from"] = new List<object?> { new Map { ["podSelector"] = new Map { ["matchLabels"] = Selector(g.Key) } } },
                ["ports"] = Ports(g.Select(e => e.Port)),
            }).ToList();
            files.Add(new GeneratedFile($"{NetworkPoliciesFolder}/{server.Name}-ingress.yaml",
                [Policy($"{server.Name}-ingress", server.Name, "Ingress", "ingress", rules)]));
        }

        files.Add(new GeneratedFile($"{NetworkPoliciesFolder}/kustomization.yaml",
            [Kustomization("Component", files.Select(f => f.Path[(NetworkPoliciesFolder.Length + 1)..]))]));
        return files;

        static List<object?> Ports(IEnumerable<int> ports) =>
            ports.Distinct().Order().Select(p => (object?)new Map { ["protocol"] = "TCP", ["port"] = p }).ToList();

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

    // Every secret parameter some pod reads becomes a Secret of the same name, synced from the store.
    private static IEnumerable<GeneratedFile> ExternalSecrets(List<Workload> workloads, KubernetesPublishingOptions options)
    {
        var secrets = workloads.SelectMany(w => w.Secrets).Distinct().ToList();
        var files = secrets.Select(p => new GeneratedFile($"{ExternalSecretsFolder}/{p.Name}.yaml",
        [
            new Map
            {
                ["apiVersion"] = "external-secrets.io/v1",
                ["kind"] = "ExternalSecret",
                ["metadata"] = new Map { ["name"] = p.Name, ["labels"] = new Map { ["app.kubernetes.io/part-of"] = "platform" } },
                ["spec"] = new Map
                {
                    ["refreshInterval"] = "1h",
                    ["secretStoreRef"] = new Map { ["kind"] = "ClusterSecretStore", ["name"] = options.SecretStore },
                    ["target"] = new Map { ["name"] = p.Name, ["creationPolicy"] = "Owner", ["deletionPolicy"] = "Retain" },
                    ["data"] = new List<object?>
                    {
                        new Map { ["secretKey"] = SecretKey, ["remoteRef"] = new Map { ["key"] = options.SecretKeyPrefix + p.Name } },
                    },
                },
            },
        ])).ToList();
        files.Add(new GeneratedFile($"{ExternalSecretsFolder}/kustomization.yaml",
            [Kustomization("Component", files.Select(f => f.Path[(ExternalSecretsFolder.Length + 1)..]))]));
        return files;
    }
}
