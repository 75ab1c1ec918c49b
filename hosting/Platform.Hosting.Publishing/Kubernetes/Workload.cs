using Platform.Hosting.ApplicationModel;
using static Platform.Hosting.Publishing.Kubernetes.KubernetesGenerator;
using Map = System.Collections.Generic.OrderedDictionary<string, object?>;

namespace Platform.Hosting.Publishing.Kubernetes;

/// <summary>One deployable resource, with its environment split into ConfigMap and pod env.</summary>
internal sealed class Workload
{
    private const string TmpVolume = "tmp";

    private Workload(IResource resource) => Resource = resource;

    public IResource Resource { get; }

    public string Name => Resource.Name;

    public bool IsStateful => Resource is ContainerResource && Resource.OfAnnotation<DataVolumeAnnotation>().Any();

    /// <summary>Non-secret variables: the ConfigMap <c>&lt;name&gt;-env</c>.</summary>
    public List<KeyValuePair<string, string>> ConfigMap { get; } = [];

    /// <summary>Pod env entries (secretKeyRefs first, then values that expand them).</summary>
    public List<Map> Env { get; } = [];

    public List<string> Args { get; } = [];

    /// <summary>Secret parameters the pod reads, each from the Secret named after it.</summary>
    public List<ParameterResource> Secrets { get; } = [];

    /// <summary>Endpoints of other resources this workload's configuration points at.</summary>
    public List<EndpointEdge> Peers { get; } = [];

    public string Image { get; private set; } = string.Empty;

    public static Workload From(IResource resource, DistributedApplicationExecutionContext executionContext, KubernetesPublishingOptions options)
    {
        var w = new Workload(resource);
        w.Image = resource switch
        {
            ProjectResource => $"{options.Registry}/{resource.Name}:{options.ImageTag}",
            _ when resource.TryGetLastAnnotation<ContainerImageAnnotation>(out var image) => image.Reference,
            _ => throw new DistributedApplicationException($"Resource '{resource.Name}' has no image (WithImage)."),
        };

        var env = new List<KeyValuePair<string, object>>();
        if (resource is ProjectResource project)
        {
            env.AddRange(ProjectDefaults(project, options));
        }

        env.AddRange(Traits.ExtraEnvironment(resource));
        env.AddRange(PublishModel.GetEnvironment(resource, executionContext));
        var last = new Dictionary<string, object>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (var (name, value) in env)
        {
            if (!last.ContainsKey(name))
            {
                order.Add(name);
            }

            last[name] = value;
        }

        var expanded = new List<Map>();
        var expandedSecrets = new List<ParameterResource>();
        foreach (var name in order)
        {
            var value = last[name];
            var rendered = KubernetesValueRenderer.Render(value, forExpansion: false);
            w.AddPeers(rendered);
            if (rendered.Secrets.Count == 0)
            {
                w.ConfigMap.Add(new(name, rendered.Text));
            }
            else if (value is ParameterResource p && name == KubernetesValueRenderer.SecretVariable(p))
            {
                // The variable is the secret itself under its canonical name: one secretKeyRef serves both.
                w.AddSecret(p);
            }
            else if (value is ParameterResource direct)
            {
                w.AddSecret(direct);
                w.Env.Add(SecretRef(name, direct));
            }
            else
            {
                // A connection string with a password: Kubernetes expands $(VAR) from the secretKeyRef'd
                // variable declared before it, so the password never leaves the Secret.
                foreach (var s in rendered.Secrets)
                {
                    w.AddSecret(s);
                    expandedSecrets.Add(s);
                }

                expanded.Add(new Map { ["name"] = name, ["value"] = KubernetesValueRenderer.Render(value, forExpansion: true).Text });
            }
        }

        foreach (var arg in PublishModel.GetArgs(resource))
        {
            var rendered = KubernetesValueRenderer.Render(arg, forExpansion: true);
            w.AddPeers(rendered);
            foreach (var s in rendered.Secrets)
            {
                w.AddSecret(s);
                expandedSecrets.Add(s);
            }

            w.Args.Add(rendered.Text);
        }

        // Variables that $(VAR) expansions read must be declared first; the server's own (POSTGRES_PASSWORD
        // in the postgres pod) already is. Secrets only passed through under another name need no helper.
        var helpers = w.Secrets.Where(s => expandedSecrets.Contains(s)).ToList();
        foreach (var s in helpers.Where(s => !w.Env.Any(e => (string)e["name"]! == KubernetesValueRenderer.SecretVariable(s))).Reverse())
        {
            w.Env.Insert(0, SecretRef(KubernetesValueRenderer.SecretVariable(s), s));
        }

        if (resource is ProjectResource)
        {
            // Each replica reports its pod name as its instance id, as the AppHost gives each replica its own.
            w.Env.Add(new Map
            {
                ["name"] = "POD_NAME",
                ["valueFrom"] = new Map { ["fieldRef"] = new Map { ["fieldPath"] = "metadata.name" } },
            });
            expanded.Add(new Map { ["name"] = "OTEL_RESOURCE_ATTRIBUTES", ["value"] = "service.instance.id=$(POD_NAME)" });
        }

        w.Env.AddRange(expanded);
        var clash = w.ConfigMap.Select(kv => kv.Key).Intersect(w.Env.Select(e => (string)e["name"]!)).FirstOrDefault();
        if (clash is not null)
        {
            throw new DistributedApplicationException($"Resource '{resource.Name}': variable '{clash}' would be both a ConfigMap entry and a secret reference.");
        }

        return w;
    }

    private static Map SecretRef(string name, ParameterResource p) => new()
    {
        ["name"] = name,
        ["valueFrom"] = new Map
        {
            ["secretKeyRef"] = new Map { ["name"] = p.Name, ["key"] = SecretKey },
        },
    };

    private void AddSecret(ParameterResource p)
    {
        if (!Secrets.Contains(p))
        {
            Secrets.Add(p);
        }
    }

    private void AddPeers(RenderedValue rendered)
    {
        foreach (var e in rendered.Endpoints.Where(e => !Peers.Contains(e)))
        {
            Peers.Add(e);
        }
    }

    // Aspire's project environment, for a pod: the port .NET listens on, and where telemetry goes.
    private static IEnumerable<KeyValuePair<string, object>> ProjectDefaults(ProjectResource project, KubernetesPublishingOptions options)
    {
        var http = project.GetEndpoints().Where(e => e.UriScheme == "http").ToList();
        if (http.Count > 0)
        {
            yield return new("HTTP_PORTS", string.Join(';', http.Select(e => KubernetesValueRenderer.TargetPort(project, e))));
        }

        yield return new("ASPNETCORE_FORWARDEDHEADERS_ENABLED", "true");
        yield return new("OTEL_SERVICE_NAME", project.Name);
        yield return new("OTEL_EXPORTER_OTLP_ENDPOINT", options.OtlpEndpoint);
        yield return new("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
        yield return new("OTEL_DOTNET_EXPERIMENTAL_OTLP_EMIT_EXCEPTION_LOG_ATTRIBUTES", "true");
        yield return new("OTEL_DOTNET_EXPERIMENTAL_OTLP_EMIT_EVENT_LOG_ATTRIBUTES", "true");
        yield return new("OTEL_DOTNET_EXPERIMENTAL_OTLP_RETRY", "in_memory");
    }

    public IEnumerable<GeneratedFile> Files(KubernetesPublishingOptions options)
    {
        var workloadFile = IsStateful ? "statefulset.yaml" : "deployment.yaml";
        var files = new List<GeneratedFile>
        {
            new($"{Name}/{workloadFile}", [IsStateful ? StatefulSet(options) : Deployment(options)]),
            new($"{Name}/service.yaml", IsStateful ? [Service(headless: false), Service(headless: true)] : [Service(headless: false)]),
            new($"{Name}/serviceaccount.yaml", [ServiceAccount()]),
        };

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

        files.Add(new($"{Name}/kustomization.yaml",
            [Kustomization("Kustomization", [workloadFile, "service.yaml", "serviceaccount.yaml"], extra: extra)]));
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
        spec["ports"] = Resource.GetEndpoints().Select(e => (object?)new Map
        {
            ["name"] = e.Name,
            ["protocol"] = "TCP",
            ["port"] = KubernetesValueRenderer.TargetPort(Resource, e),
            ["targetPort"] = e.Name,
        }).ToList();
        return new Map
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Service",
            ["metadata"] = Metadata(headless ? $"{Name}-headless" : Name, Name),
            ["spec"] = spec,
        };
    }

    private Map Deployment(KubernetesPublishingOptions options) => new()
    {
        ["apiVersion"] = "apps/v1",
        ["kind"] = "Deployment",
        ["metadata"] = Metadata(Name, Name),
        ["spec"] = new Map
        {
            ["replicas"] = Resource.GetReplicaCount(),
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

    private Map StatefulSet(KubernetesPublishingOptions options)
    {
        var claims = Resource.OfAnnotation<DataVolumeAnnotation>().Select(v =>
        {
            var spec = new Map
            {
                ["accessModes"] = new List<object?> { "ReadWriteOnce" },
            };
            if (options.StorageClass is not null)
            {
                spec["storageClassName"] = options.StorageClass;
            }

            spec["resources"] = new Map { ["requests"] = new Map { ["storage"] = options.StorageSize } };
            return (object?)new Map { ["metadata"] = new Map { ["name"] = v.Name, ["labels"] = Labels(Name) }, ["spec"] = spec };
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

    private Map PodTemplate(KubernetesPublishingOptions options)
    {
        var annotations = new Map();
        if (Secrets.Count > 0)
        {
            // Secrets synced by External Secrets have no hash suffix; Reloader rolls the pods when they change.
            annotations[ReloadAnnotation] = string.Join(',', Secrets.Select(s => s.Name));
        }

        var writable = new List<(string Name, string Path)> { (TmpVolume, "/tmp") };
        writable.AddRange(Traits.WritablePaths(Resource).Select((p, i) => ($"writable-{i}", p)));

        var mounts = writable.Select(v => (object?)new Map { ["name"] = v.Name, ["mountPath"] = v.Path }).ToList();
        mounts.AddRange(Resource.OfAnnotation<DataVolumeAnnotation>()
            .Select(v => (object?)new Map { ["name"] = v.Name, ["mountPath"] = v.TargetPath }));

        var container = new Map
        {
            ["name"] = Name,
            ["image"] = Image,
            ["imagePullPolicy"] = "IfNotPresent",
        };
        if (Args.Count > 0)
        {
            container["args"] = Args.Cast<object?>().ToList();
        }

        container["ports"] = Resource.GetEndpoints().Select(e => (object?)new Map
        {
            ["name"] = e.Name,
            ["containerPort"] = KubernetesValueRenderer.TargetPort(Resource, e),
            ["protocol"] = "TCP",
        }).ToList();
        if (ConfigMap.Count > 0)
        {
            container["envFrom"] = new List<object?> { new Map { ["configMapRef"] = new Map { ["name"] = $"{Name}-env" } } };
        }

        if (Env.Count > 0)
        {
            container["env"] = Env.Cast<object?>().ToList();
        }

        foreach (var (key, probe) in Probes.For(Resource))
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
}
