using System.Text.RegularExpressions;
using Platform.Aspirate.Manifest;
using static Platform.Aspirate.Kubernetes.KubernetesGenerator;
using Map = System.Collections.Generic.OrderedDictionary<string, object?>;

namespace Platform.Aspirate.Kubernetes;

/// <summary>One project or container of the manifest, with its environment split into ConfigMap and pod env.</summary>
internal sealed partial class Workload
{
    private const string TmpVolume = "tmp";
    private const string PodName = "POD_NAME";
    private const string PodIp = "POD_IP";
    private const string ResourceAttributes = "OTEL_RESOURCE_ATTRIBUTES";

    private Workload(WorkloadResource resource, string image)
    {
        Resource = resource;
        Image = image;
    }

    public WorkloadResource Resource { get; }

    public string Name => Resource.Name;

    public string Image { get; }

    public bool IsProject => Resource.Kind == WorkloadKind.Project;

    /// <summary>Containers with volumes keep their data in PersistentVolumeClaims: a StatefulSet.</summary>
    public bool IsStateful => Resource.Volumes.Count > 0;

    /// <summary>Non-secret variables: the ConfigMap <c>&lt;name&gt;-env</c>.</summary>
    public List<KeyValuePair<string, string>> ConfigMap { get; } = [];

    /// <summary>Pod env entries: secretKeyRefs first, then the downward API, then values that expand them.</summary>
    public List<Map> Env { get; } = [];

    public List<string> Args { get; } = [];

    /// <summary>Secrets the pod reads, in first-use order.</summary>
    public List<SecretSource> Secrets { get; } = [];

    /// <summary>Endpoints of other workloads this one's configuration points at.</summary>
    public List<EndpointUse> Peers { get; } = [];

    // Variables the manifest sets to exactly one secret (POSTGRES_PASSWORD in the postgres pod), in manifest order.
    private readonly List<(string Name, SecretSource Secret)> _directSecrets = [];

    public static Workload From(WorkloadResource resource, ExpressionResolver resolver, GenerateOptions options)
    {
        if (!GenerateOptions.DnsLabel().IsMatch(resource.Name) || !char.IsAsciiLetter(resource.Name[0]))
        {
            throw new ManifestException($"resources.{resource.Name}: a Kubernetes Service name must be a DNS label starting with a letter");
        }

        foreach (var b in resource.Bindings.Where(b => !PortName().IsMatch(b.Name) || b.Name.Contains("--", StringComparison.Ordinal)))
        {
            throw new ManifestException($"resources.{resource.Name}.bindings.{b.Name}: a Kubernetes port name is at most 15 lower-case letters, digits and '-'");
        }

        var image = resource.Kind == WorkloadKind.Container
            ? resource.Image!
            : string.Join('/', new[] { options.ContainerRegistry, options.ContainerRepositoryPrefix }.Where(s => s.Length > 0)
                .Append($"{resource.Name}:{options.ContainerImageTag}"));
        var w = new Workload(resource, image);
        w.Build(resolver, options);
        return w;
    }

    private void Build(ExpressionResolver resolver, GenerateOptions options)
    {
        var env = new List<KeyValuePair<string, string>>();
        if (IsProject)
        {
            // Aspirate's project defaults, pointed at the cluster's collector instead of the dashboard.
            env.Add(new("OTEL_SERVICE_NAME", Name));
            env.Add(new("OTEL_EXPORTER_OTLP_ENDPOINT", options.OtlpEndpoint));
            env.Add(new("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"));
        }

        env.AddRange(ImageConventions.ExtraEnvironment(Resource));
        env.AddRange(Resource.Env);

        // Later entries win (the manifest over the defaults) and keep the first one's place.
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (var (name, value) in env)
        {
            if (values.TryAdd(name, value))
            {
                order.Add(name);
            }
            else
            {
                values[name] = value;
            }
        }

        var direct = _directSecrets;
        var expanded = new List<Map>();
        var expandedSecrets = new List<SecretSource>();
        foreach (var name in order)
        {
            var resolved = resolver.Resolve(values[name], $"resources.{Name}.env.{name}");
            AddPeers(resolved);
            if (resolved.Secrets.Count == 0)
            {
                ConfigMap.Add(new(name, resolved.Literal));
            }
            else if (resolved.WholeSecret is { } secret)
            {
                AddSecret(secret);
                direct.Add((name, secret));
            }
            else
            {
                // A connection string with a password: Kubernetes expands $(VAR) from the secretKeyRef'd variable
                // declared before it, so the password never leaves the Secret.
                resolved.Secrets.ToList().ForEach(AddSecret);
                expandedSecrets.AddRange(resolved.Secrets);
                expanded.Add(new Map { ["name"] = name, ["value"] = resolved.ForExpansion });
            }
        }

        foreach (var (arg, i) in Resource.Args.Select((a, i) => (a, i)))
        {
            var resolved = resolver.Resolve(arg, $"resources.{Name}.args[{i}]");
            AddPeers(resolved);
            resolved.Secrets.ToList().ForEach(AddSecret);
            expandedSecrets.AddRange(resolved.Secrets);
            Args.Add(resolved.ForExpansion);
        }

        // Expansions read a variable holding the secret; one the manifest already declares (POSTGRES_PASSWORD in the
        // postgres pod) serves, otherwise a helper named after the secret is declared first.
        foreach (var s in Secrets.Where(expandedSecrets.Contains))
        {
            if (direct.Any(d => d.Name == s.Variable && d.Secret == s))
            {
                continue;
            }

            Env.Add(SecretRef(s.Variable, s));
        }

        Env.AddRange(direct.Select(d => SecretRef(d.Name, d.Secret)));
        Env.AddRange(ImageConventions.ResourceFields(Resource).Select(f => ResourceFieldRef(f.Name, f.Resource, f.Divisor)));
        if (IsProject)
        {
            // Each replica names itself (telemetry's service.instance.id) and announces its own address for per-replica
            // balancing (libs/Platform.WorkerDiscovery reads POD_IP), as run mode gives each replica its own.
            Env.Add(FieldRef(PodName, "metadata.name"));
            Env.Add(FieldRef(PodIp, "status.podIP"));
            var attributes = $"service.instance.id=$({PodName})";
            var declared = ConfigMap.FindIndex(kv => kv.Key == ResourceAttributes);
            if (declared >= 0)
            {
                attributes = ConfigMap[declared].Value.Replace("$(", "$$(", StringComparison.Ordinal) + "," + attributes;
                ConfigMap.RemoveAt(declared);
            }

            expanded.Add(new Map { ["name"] = ResourceAttributes, ["value"] = attributes });
        }

        Env.AddRange(expanded);
        var podEnv = Env.Select(e => (string)e["name"]!).ToList();
        var clash = podEnv.GroupBy(n => n).FirstOrDefault(g => g.Count() > 1)?.Key
            ?? ConfigMap.Select(kv => kv.Key).Intersect(podEnv).FirstOrDefault();
        if (clash is not null)
        {
            throw new ManifestException($"resources.{Name}.env.{clash}: the variable is declared twice in the pod (a secret reference or the downward API needs that name)");
        }
    }

    private static Map SecretRef(string name, SecretSource secret) => new()
    {
        ["name"] = name,
        ["valueFrom"] = new Map { ["secretKeyRef"] = new Map { ["name"] = secret.Name, ["key"] = SecretKey } },
    };

    private static Map ResourceFieldRef(string name, string resource, string divisor) => new()
    {
        ["name"] = name,
        ["valueFrom"] = new Map { ["resourceFieldRef"] = new Map { ["resource"] = resource, ["divisor"] = divisor } },
    };

    private static Map FieldRef(string name, string path) => new()
    {
        ["name"] = name,
        ["valueFrom"] = new Map { ["fieldRef"] = new Map { ["fieldPath"] = path } },
    };

    private void AddSecret(SecretSource s)
    {
        if (!Secrets.Contains(s))
        {
            Secrets.Add(s);
        }
    }

    private void AddPeers(ResolvedValue resolved)
    {
        foreach (var e in resolved.Endpoints.Where(e => e.Resource.Name != Name && !Peers.Contains(e)))
        {
            Peers.Add(e);
        }
    }

    public IEnumerable<GeneratedFile> Files(GenerateOptions options)
    {
        var workloadFile = IsStateful ? "statefulset.yaml" : "deployment.yaml";
        var resources = new List<string> { workloadFile };
        var files = new List<GeneratedFile> { new($"{Name}/{workloadFile}", [IsStateful ? StatefulSet(options) : Deployment(options)]) };
        if (Resource.Bindings.Count > 0)
        {
            files.Add(new($"{Name}/service.yaml", IsStateful ? [Service(headless: false), Service(headless: true)] : [Service(headless: false)]));
            resources.Add("service.yaml");
        }

        files.Add(new($"{Name}/serviceaccount.yaml", [ServiceAccount()]));
        resources.Add("serviceaccount.yaml");

        var extra = new Map();
        if (ConfigMap.Count > 0)
        {
            // A generated ConfigMap gets a content-hash suffix, so a changed value rolls the pods.
            extra["configMapGenerator"] = new List<object?>
            {
                new Map
                {
                    ["name"] = $"{Name}-env",
                    ["literals"] = ConfigMap.Select(kv => (object?)$"{kv.Key}={kv.Value}").ToList(),
                },
            };
        }

        files.Add(new($"{Name}/kustomization.yaml", [Kustomization("Kustomization", resources, extra: extra)]));
        return files;
    }

    private Map ServiceAccount() => new()
    {
        ["apiVersion"] = "v1",
        ["kind"] = "ServiceAccount",
        ["metadata"] = Metadata(Name, Name),
        // No workload talks to the Kubernetes API; a mounted token would only be something to steal.
        ["automountServiceAccountToken"] = false,
    };

    private Map Service(bool headless)
    {
        var spec = new Map { ["type"] = "ClusterIP" };
        if (headless)
        {
            // The StatefulSet's governing Service: stable per-pod DNS names, no load balancing.
            spec["clusterIP"] = "None";
        }

        spec["selector"] = Selector(Name);
        spec["ports"] = Resource.Bindings.Select(b =>
        {
            var port = new Map { ["name"] = b.Name, ["protocol"] = Protocol(b) };
            if (AppProtocol(b) is { } appProtocol)
            {
                port["appProtocol"] = appProtocol;
            }

            port["port"] = Ports.Service(Resource, b);
            port["targetPort"] = b.Name;
            return (object?)port;
        }).ToList();
        return new Map
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Service",
            ["metadata"] = Metadata(headless ? $"{Name}-headless" : Name, Name),
            ["spec"] = spec,
        };
    }

    // HTTP/2 without TLS (gRPC's usual in-cluster transport) is h2c: meshes and gateways must not speak HTTP/1.1 to it.
    private static string? AppProtocol(Binding b) =>
        b.Transport == "http2" && !b.Tls ? "kubernetes.io/h2c" : null;

    internal static string Protocol(Binding b) => b.Protocol.Equals("udp", StringComparison.OrdinalIgnoreCase) ? "UDP" : "TCP";

    private Map Deployment(GenerateOptions options) => new()
    {
        ["apiVersion"] = "apps/v1",
        ["kind"] = "Deployment",
        ["metadata"] = Metadata(Name, Name),
        ["spec"] = new Map
        {
            // Aspire's manifest carries no replica count; the overlays set it (dev) or hand it to an HPA (staging, prod).
            ["replicas"] = 1,
            ["revisionHistoryLimit"] = 5,
            ["selector"] = new Map { ["matchLabels"] = Selector(Name) },
            // Aspirate's default is Recreate: every deploy an outage. Surge one pod, never drop below the count.
            ["strategy"] = new Map
            {
                ["type"] = "RollingUpdate",
                ["rollingUpdate"] = new Map { ["maxSurge"] = 1, ["maxUnavailable"] = 0 },
            },
            ["template"] = PodTemplate(options),
        },
    };

    private Map StatefulSet(GenerateOptions options)
    {
        var claims = Resource.Volumes.Select(v =>
        {
            var spec = new Map { ["accessModes"] = new List<object?> { "ReadWriteOnce" } };
            if (options.StorageClass is not null)
            {
                spec["storageClassName"] = options.StorageClass;
            }

            spec["resources"] = new Map { ["requests"] = new Map { ["storage"] = options.StorageSize } };
            return (object?)new Map { ["metadata"] = new Map { ["name"] = ClaimName(v), ["labels"] = Labels(Name) }, ["spec"] = spec };
        }).ToList();

        return new Map
        {
            ["apiVersion"] = "apps/v1",
            ["kind"] = "StatefulSet",
            ["metadata"] = Metadata(Name, Name),
            ["spec"] = new Map
            {
                ["serviceName"] = $"{Name}-headless",
                ["replicas"] = 1,
                ["revisionHistoryLimit"] = 5,
                ["selector"] = new Map { ["matchLabels"] = Selector(Name) },
                ["updateStrategy"] = new Map { ["type"] = "RollingUpdate" },
                // Deleting or scaling the StatefulSet must never delete the data.
                ["persistentVolumeClaimRetentionPolicy"] = new Map { ["whenDeleted"] = "Retain", ["whenScaled"] = "Retain" },
                ["template"] = PodTemplate(options),
                ["volumeClaimTemplates"] = claims,
            },
        };
    }

    // Aspire's generated volume names ("app.apphost-<hash>-data") are no valid claim names; the mount path names it then.
    private string ClaimName(Volume v) => GenerateOptions.DnsLabel().IsMatch(v.Name)
        ? v.Name
        : $"{Name}-{string.Join('-', v.Target.Split('/', StringSplitOptions.RemoveEmptyEntries)).ToLowerInvariant()}";

    private Map PodTemplate(GenerateOptions options)
    {
        var annotations = new Map();
        if (Secrets.Count > 0)
        {
            // Secrets synced by External Secrets have no hash suffix; Reloader rolls the pods when they change.
            annotations[ReloadAnnotation] = string.Join(',', Secrets.Select(s => s.Name));
        }

        var writable = new List<(string Name, string Path)> { (TmpVolume, "/tmp") };
        writable.AddRange(ImageConventions.WritablePaths(Resource).Select((p, i) => ($"writable-{i}", p)));

        var mounts = writable.Select(v => (object?)new Map { ["name"] = v.Name, ["mountPath"] = v.Path }).ToList();
        mounts.AddRange(Resource.Volumes.Select(v =>
        {
            var mount = new Map { ["name"] = ClaimName(v), ["mountPath"] = v.Target };
            if (v.ReadOnly)
            {
                mount["readOnly"] = true;
            }

            return (object?)mount;
        }));

        var container = new Map
        {
            ["name"] = Name,
            ["image"] = Image,
            ["imagePullPolicy"] = options.ImagePullPolicy,
        };
        if (Resource.Entrypoint is { } entrypoint)
        {
            container["command"] = new List<object?> { entrypoint.Replace("$(", "$$(", StringComparison.Ordinal) };
        }

        if (Args.Count > 0)
        {
            container["args"] = Args.Cast<object?>().ToList();
        }

        if (Resource.Bindings.Count > 0)
        {
            container["ports"] = Resource.Bindings.Select(b => (object?)new Map
            {
                ["name"] = b.Name,
                ["containerPort"] = Ports.Target(Resource, b),
                ["protocol"] = Protocol(b),
            }).ToList();
        }

        if (ConfigMap.Count > 0)
        {
            container["envFrom"] = new List<object?> { new Map { ["configMapRef"] = new Map { ["name"] = $"{Name}-env" } } };
        }

        if (Env.Count > 0)
        {
            container["env"] = Env.Cast<object?>().ToList();
        }

        foreach (var (key, probe) in Probes())
        {
            container[key] = probe;
        }

        container["securityContext"] = new Map
        {
            ["allowPrivilegeEscalation"] = false,
            ["privileged"] = false,
            ["readOnlyRootFilesystem"] = true,
            ["runAsNonRoot"] = true,
            ["capabilities"] = new Map { ["drop"] = new List<object?> { "ALL" } },
        };
        container["volumeMounts"] = mounts;

        var metadata = new Map { ["labels"] = Labels(Name) };
        if (annotations.Count > 0)
        {
            metadata["annotations"] = annotations;
        }

        return new Map
        {
            ["metadata"] = metadata,
            ["spec"] = new Map
            {
                ["serviceAccountName"] = Name,
                ["automountServiceAccountToken"] = false,
                // Service links would inject POSTGRES_PORT=tcp://... and the like, clashing with real settings.
                ["enableServiceLinks"] = false,
                ["securityContext"] = new Map
                {
                    ["runAsNonRoot"] = true,
                    ["runAsUser"] = options.RunAsUser,
                    ["runAsGroup"] = options.RunAsUser,
                    ["fsGroup"] = options.RunAsUser,
                    ["fsGroupChangePolicy"] = "OnRootMismatch",
                    ["seccompProfile"] = new Map { ["type"] = "RuntimeDefault" },
                },
                ["terminationGracePeriodSeconds"] = 30,
                ["containers"] = new List<object?> { container },
                ["volumes"] = writable.Select(v => (object?)new Map
                {
                    ["name"] = v.Name,
                    ["emptyDir"] = new Map { ["sizeLimit"] = "256Mi" },
                }).ToList(),
            },
        };
    }

    // Probes by convention: services built on ServiceDefaults answer /health (ready: dependencies reachable) and /alive
    // (the process is not wedged); servers get what their image offers; anything else a TCP check of its first port.
    private IEnumerable<KeyValuePair<string, Map>> Probes()
    {
        var first = Resource.Bindings.FirstOrDefault();
        if (IsProject)
        {
            var http = Resource.Bindings.FirstOrDefault(b => b.Scheme is "http" or "https" && b.Transport == "http");
            if (http is null && first is null)
            {
                yield break;
            }

            var ready = http is null ? Tcp(first!.Name) : HttpGet("/health", http);
            var alive = http is null ? Tcp(first!.Name) : HttpGet("/alive", http);

            // Readiness: out of the Service quickly when a dependency fails, back as soon as it recovers.
            yield return new("readinessProbe", With(ready, period: 10, timeout: 3, failures: 3));

            // Liveness: only a wedged process, so slower to give up than readiness.
            yield return new("livenessProbe", With(alive, period: 20, timeout: 3, failures: 3));

            // Holds liveness back while the runtime starts (2 minutes); slower starters extend it in an overlay.
            yield return new("startupProbe", With(new Map(alive), period: 5, timeout: 3, failures: 24));
            yield break;
        }

        var readiness = ImageConventions.Readiness(Resource,
            name => ConfigMap.FirstOrDefault(kv => kv.Key == name).Value,
            _directSecrets.Select(d => d.Name).FirstOrDefault());
        if (readiness is null && first is null)
        {
            yield break;
        }

        yield return new("readinessProbe", With(readiness ?? Tcp(first!.Name), period: 10, timeout: 3, failures: 3));
        if (first is not null)
        {
            yield return new("livenessProbe", With(Tcp(first.Name), period: 20, timeout: 3, failures: 3));
        }
    }

    private static Map HttpGet(string path, Binding b)
    {
        var get = new Map { ["path"] = path, ["port"] = b.Name };
        if (b.Tls)
        {
            get["scheme"] = "HTTPS";
        }

        return new Map { ["httpGet"] = get };
    }

    private static Map Tcp(string port) => new() { ["tcpSocket"] = new Map { ["port"] = port } };

    private static Map With(Map action, int period, int timeout, int failures) => new(action)
    {
        ["periodSeconds"] = period,
        ["timeoutSeconds"] = timeout,
        ["failureThreshold"] = failures,
    };

    // IANA service name, what Kubernetes accepts as a port name.
    [GeneratedRegex("^(?=.*[a-z])[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$")]
    private static partial Regex PortName();
}
