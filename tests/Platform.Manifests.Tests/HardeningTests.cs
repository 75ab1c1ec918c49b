using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Platform.Manifests.Tests;

/// <summary>One test per rule of docs/hardening.md, over <c>kubectl kustomize manifests/overlays/prod</c>; failures name object and field.</summary>
public sealed partial class HardeningTests(PublishFixture fixture)
{
    private static readonly string[] Services = ["admin-api", "model-worker", "context-enrichment", "inference-api"];
    private static readonly string[] DataStores = ["postgres", "redis", "objectstore"];

    private Rendered Prod => fixture.Render("prod");

    private sealed record Pod(JsonObject Owner, string Id, JsonObject Spec, string Path, bool LongRunning)
    {
        public IEnumerable<(JsonObject Container, string Path)> Containers =>
            new[] { "initContainers", "containers" }.SelectMany(list => (Spec[list]?.AsArray() ?? [])
                .Select((c, i) => (c!.AsObject(), $"{Path}.{list}[{i}]({c!["name"]})")));
    }

    private IEnumerable<Pod> Workloads() => Prod.Objects.Select(o => (string?)o["kind"] switch
    {
        "Deployment" or "StatefulSet" or "Job" => new Pod(o, Rendered.Id(o), o["spec"]!["template"]!["spec"]!.AsObject(), "spec.template.spec", (string?)o["kind"] != "Job"),
        "CronJob" => new Pod(o, Rendered.Id(o), o["spec"]!["jobTemplate"]!["spec"]!["template"]!["spec"]!.AsObject(), "spec.jobTemplate.spec.template.spec", false),
        _ => null,
    }).OfType<Pod>();

    private static void Pass(List<string> failures) => Assert.True(failures.Count == 0, string.Join('\n', failures));

    private JsonObject Get(string kind, string name) =>
        Prod.OfKind(kind).SingleOrDefault(o => (string?)o["metadata"]!["name"] == name)
        ?? throw new Xunit.Sdk.XunitException($"{kind}/{name} is missing from the prod render");

    [Fact]
    public void Rule01_pods_run_as_non_root_with_high_uid_gid_and_fsGroup()
    {
        var f = new List<string>();
        foreach (var p in Workloads())
        {
            var sc = p.Spec["securityContext"];
            if ((bool?)sc?["runAsNonRoot"] != true) f.Add($"{p.Id}: {p.Path}.securityContext.runAsNonRoot must be true");
            if ((long?)sc?["runAsUser"] is not >= 10000) f.Add($"{p.Id}: {p.Path}.securityContext.runAsUser must be >= 10000");
            if ((long?)sc?["runAsGroup"] is not >= 10000) f.Add($"{p.Id}: {p.Path}.securityContext.runAsGroup must be >= 10000");
            if (sc?["fsGroup"] is null) f.Add($"{p.Id}: {p.Path}.securityContext.fsGroup must be set");
            foreach (var (c, path) in p.Containers)
            {
                if ((long?)c["securityContext"]?["runAsUser"] is < 10000) f.Add($"{p.Id}: {path}.securityContext.runAsUser overrides to < 10000");
            }
        }

        Pass(f);
    }

    [Fact]
    public void Rule02_containers_drop_all_capabilities_without_escalation()
    {
        var f = new List<string>();
        foreach (var p in Workloads())
        {
            foreach (var (c, path) in p.Containers)
            {
                var sc = c["securityContext"];
                if ((bool?)sc?["allowPrivilegeEscalation"] != false) f.Add($"{p.Id}: {path}.securityContext.allowPrivilegeEscalation must be false");
                if ((bool?)sc?["privileged"] == true) f.Add($"{p.Id}: {path}.securityContext.privileged must not be true");
                var drop = sc?["capabilities"]?["drop"]?.AsArray().Select(x => (string?)x) ?? [];
                if (!drop.Contains("ALL")) f.Add($"{p.Id}: {path}.securityContext.capabilities.drop must contain ALL");
                if (sc?["capabilities"]?["add"] is JsonArray { Count: > 0 }) f.Add($"{p.Id}: {path}.securityContext.capabilities.add must be empty");
            }
        }

        Pass(f);
    }

    [Fact]
    public void Rule03_pods_use_the_RuntimeDefault_seccomp_profile()
    {
        Pass(Workloads().Where(p => (string?)p.Spec["securityContext"]?["seccompProfile"]?["type"] != "RuntimeDefault")
            .Select(p => $"{p.Id}: {p.Path}.securityContext.seccompProfile.type must be RuntimeDefault").ToList());
    }

    [Fact]
    public void Rule04_root_filesystems_are_read_only_and_writable_paths_are_emptyDirs()
    {
        var f = new List<string>();
        foreach (var p in Workloads())
        {
            var volumes = (p.Spec["volumes"]?.AsArray() ?? []).ToDictionary(v => (string)v!["name"]!, v => v!.AsObject());
            var claims = (p.Owner["spec"]?["volumeClaimTemplates"]?.AsArray() ?? []).Select(v => (string?)v!["metadata"]!["name"]).ToHashSet();
            foreach (var (c, path) in p.Containers)
            {
                if ((bool?)c["securityContext"]?["readOnlyRootFilesystem"] != true) f.Add($"{p.Id}: {path}.securityContext.readOnlyRootFilesystem must be true");
                var mounts = c["volumeMounts"]?.AsArray() ?? [];
                if (!mounts.Any(m => (string?)m!["mountPath"] == "/tmp")) f.Add($"{p.Id}: {path}.volumeMounts must mount an emptyDir at /tmp");
                foreach (var m in mounts)
                {
                    var name = (string)m!["name"]!;
                    if (claims.Contains(name)) continue;
                    if (!volumes.TryGetValue(name, out var v) || v["emptyDir"] is null && v["secret"] is null && v["configMap"] is null)
                    {
                        f.Add($"{p.Id}: {path}.volumeMounts[{name}] must be an emptyDir, a PVC, or read-only configuration");
                    }
                }
            }
        }

        Pass(f);
    }

    [Fact]
    public void Rule05_no_host_namespaces_ports_or_paths()
    {
        var f = new List<string>();
        foreach (var p in Workloads())
        {
            foreach (var field in new[] { "hostNetwork", "hostPID", "hostIPC" })
            {
                if ((bool?)p.Spec[field] == true) f.Add($"{p.Id}: {p.Path}.{field} must not be true");
            }

            foreach (var v in p.Spec["volumes"]?.AsArray() ?? [])
            {
                if (v!["hostPath"] is not null) f.Add($"{p.Id}: {p.Path}.volumes[{v["name"]}].hostPath is forbidden");
            }

            foreach (var (c, path) in p.Containers)
            {
                if ((c["ports"]?.AsArray() ?? []).Any(port => port!["hostPort"] is not null)) f.Add($"{p.Id}: {path}.ports[].hostPort is forbidden");
            }
        }

        Pass(f);
    }

    [Fact]
    public void Rule06_every_container_has_requests_and_memory_limits_and_workers_own_a_gpu()
    {
        var f = new List<string>();
        foreach (var p in Workloads())
        {
            foreach (var (c, path) in p.Containers)
            {
                var r = c["resources"];
                foreach (var (kind, key) in new[] { ("requests", "cpu"), ("requests", "memory"), ("limits", "memory"), ("limits", "ephemeral-storage") })
                {
                    if (r?[kind]?[key] is null) f.Add($"{p.Id}: {path}.resources.{kind}.{key} must be set");
                }
            }
        }

        var worker = Get("Deployment", "model-worker")["spec"]!["template"]!["spec"]!["containers"]![0]!["resources"];
        foreach (var kind in new[] { "requests", "limits" })
        {
            if (worker?[kind]?["nvidia.com/gpu"] is null) f.Add($"Deployment/model-worker: containers[0].resources.{kind}.nvidia.com/gpu must be set");
        }

        Pass(f);
    }

    [Fact]
    public void Rule07_long_running_containers_have_distinct_readiness_and_liveness_and_workers_a_startup_probe()
    {
        var f = new List<string>();
        foreach (var p in Workloads().Where(p => p.LongRunning))
        {
            foreach (var (c, path) in p.Containers.Where(x => x.Path.Contains(".containers[", StringComparison.Ordinal)))
            {
                var ready = c["readinessProbe"];
                var live = c["livenessProbe"];
                if (ready is null) f.Add($"{p.Id}: {path}.readinessProbe is missing");
                if (live is null) f.Add($"{p.Id}: {path}.livenessProbe is missing");
                if (ready is not null && live is not null && JsonNode.DeepEquals(ready, live)) f.Add($"{p.Id}: {path} readiness and liveness probes are identical");
            }
        }

        foreach (var s in Services)
        {
            var c = Get("Deployment", s)["spec"]!["template"]!["spec"]!["containers"]![0]!;
            if ((string?)c["readinessProbe"]?["httpGet"]?["path"] != "/health") f.Add($"Deployment/{s}: readinessProbe.httpGet.path must be /health");
            if ((string?)c["livenessProbe"]?["httpGet"]?["path"] != "/alive") f.Add($"Deployment/{s}: livenessProbe.httpGet.path must be /alive");
        }

        var worker = Get("Deployment", "model-worker")["spec"]!["template"]!["spec"]!["containers"]![0]!["startupProbe"];
        if (worker is null) f.Add("Deployment/model-worker: containers[0].startupProbe is missing (model load is slow)");
        else if ((int)worker["periodSeconds"]! * (int)worker["failureThreshold"]! < 300) f.Add("Deployment/model-worker: startupProbe allows less than 5 minutes for model load");
        Pass(f);
    }

    [Fact]
    public void Rule08_images_have_a_version_tag_and_a_digest_from_the_kustomization()
    {
        var f = new List<string>();
        foreach (var p in Workloads())
        {
            foreach (var (c, path) in p.Containers)
            {
                var image = (string?)c["image"] ?? string.Empty;
                var m = ImageRef().Match(image);
                if (!m.Success) f.Add($"{p.Id}: {path}.image '{image}' must be name:tag@sha256:<digest>");
                else if (m.Groups["tag"].Value == "latest") f.Add($"{p.Id}: {path}.image uses the latest tag");
            }
        }

        var kustomization = File.ReadAllText(Path.Combine(fixture.RepositoryRoot, "manifests", "overlays", "prod", "kustomization.yaml"));
        if (!kustomization.Contains("images:", StringComparison.Ordinal) || !kustomization.Contains("digest:", StringComparison.Ordinal))
        {
            f.Add("manifests/overlays/prod/kustomization.yaml: digests must be pinned in its images: block");
        }

        Pass(f);
    }

    [Fact]
    public void Rule09_each_workload_has_its_own_service_account_without_a_token_and_no_wildcard_RBAC()
    {
        var f = new List<string>();
        var accounts = Prod.OfKind("ServiceAccount").ToDictionary(a => (string)a["metadata"]!["name"]!);
        var used = new Dictionary<string, string>();
        foreach (var p in Workloads())
        {
            var sa = (string?)p.Spec["serviceAccountName"];
            if (sa is null or "default") { f.Add($"{p.Id}: {p.Path}.serviceAccountName must name the workload's own account"); continue; }
            if (used.TryGetValue(sa, out var other)) f.Add($"{p.Id}: {p.Path}.serviceAccountName '{sa}' is shared with {other}");
            used[sa] = p.Id;
            if ((bool?)p.Spec["automountServiceAccountToken"] != false) f.Add($"{p.Id}: {p.Path}.automountServiceAccountToken must be false");
            if (!accounts.TryGetValue(sa, out var account)) f.Add($"{p.Id}: ServiceAccount/{sa} is not rendered");
            else if ((bool?)account["automountServiceAccountToken"] != false) f.Add($"ServiceAccount/{sa}: automountServiceAccountToken must be false");
        }

        foreach (var role in Prod.OfKind("Role", "ClusterRole"))
        {
            foreach (var rule in role["rules"]?.AsArray() ?? [])
            {
                foreach (var field in new[] { "verbs", "resources", "apiGroups" })
                {
                    if ((rule![field]?.AsArray() ?? []).Any(v => (string?)v == "*")) f.Add($"{Rendered.Id(role)}: rules[].{field} contains '*'");
                }
            }
        }

        foreach (var binding in Prod.OfKind("RoleBinding", "ClusterRoleBinding"))
        {
            if ((string?)binding["roleRef"]?["name"] == "cluster-admin") f.Add($"{Rendered.Id(binding)}: roleRef.name must not be cluster-admin");
        }

        Pass(f);
    }

    [Fact]
    public void Rule10_stateless_services_keep_three_replicas_and_roll_without_unavailability()
    {
        var f = new List<string>();
        var hpas = Prod.OfKind("HorizontalPodAutoscaler").ToDictionary(h => (string)h["spec"]!["scaleTargetRef"]!["name"]!);
        foreach (var d in Prod.OfKind("Deployment"))
        {
            var id = Rendered.Id(d);
            var name = (string)d["metadata"]!["name"]!;
            if (!hpas.TryGetValue(name, out var hpa)) f.Add($"{id}: no HorizontalPodAutoscaler targets it");
            else if ((int?)hpa["spec"]!["minReplicas"] is not >= 3) f.Add($"HorizontalPodAutoscaler/{name}: spec.minReplicas must be >= 3");
            if (d["spec"]!["replicas"] is not null) f.Add($"{id}: spec.replicas must be absent when an HPA owns the count");
            if ((string?)d["spec"]!["strategy"]?["type"] != "RollingUpdate") f.Add($"{id}: spec.strategy.type must be RollingUpdate");
            if (d["spec"]!["strategy"]?["rollingUpdate"]?["maxUnavailable"]?.ToString() != "0") f.Add($"{id}: spec.strategy.rollingUpdate.maxUnavailable must be 0");
        }

        Pass(f);
    }

    [Fact]
    public void Rule11_each_multi_replica_workload_has_a_PDB_that_allows_one_eviction()
    {
        var f = new List<string>();
        var pdbs = Prod.OfKind("PodDisruptionBudget").ToList();
        foreach (var s in Services)
        {
            var pdb = pdbs.FirstOrDefault(p => (string?)p["spec"]!["selector"]?["matchLabels"]?["app.kubernetes.io/name"] == s);
            if (pdb is null) { f.Add($"Deployment/{s}: no PodDisruptionBudget selects it"); continue; }
            var id = Rendered.Id(pdb);
            var maxUnavailable = (int?)pdb["spec"]!["maxUnavailable"];
            var minAvailable = (int?)pdb["spec"]!["minAvailable"];
            if (!(maxUnavailable >= 1 || minAvailable is not null && minAvailable < 3)) f.Add($"{id}: spec must allow at least one eviction (maxUnavailable >= 1)");
            if ((string?)pdb["spec"]!["unhealthyPodEvictionPolicy"] != "AlwaysAllow") f.Add($"{id}: spec.unhealthyPodEvictionPolicy must be AlwaysAllow");
        }

        Pass(f);
    }

    [Fact]
    public void Rule12_each_stateless_service_has_an_autoscaling_v2_HPA_with_cpu_memory_and_behavior()
    {
        var f = new List<string>();
        foreach (var s in Services)
        {
            var hpa = Prod.OfKind("HorizontalPodAutoscaler").FirstOrDefault(h => (string?)h["spec"]!["scaleTargetRef"]!["name"] == s);
            if (hpa is null) { f.Add($"Deployment/{s}: no HorizontalPodAutoscaler"); continue; }
            var id = Rendered.Id(hpa);
            if ((string?)hpa["apiVersion"] != "autoscaling/v2") f.Add($"{id}: apiVersion must be autoscaling/v2");
            var metrics = (hpa["spec"]!["metrics"]?.AsArray() ?? []).Select(m => (string?)m!["resource"]?["name"]).ToList();
            if (!metrics.Contains("cpu")) f.Add($"{id}: spec.metrics needs a cpu target");
            if (!metrics.Contains("memory")) f.Add($"{id}: spec.metrics needs a memory target");
            if (hpa["spec"]!["behavior"]?["scaleUp"] is null || hpa["spec"]!["behavior"]?["scaleDown"] is null) f.Add($"{id}: spec.behavior needs scaleUp and scaleDown");
        }

        Pass(f);
    }

    [Theory]
    [InlineData("prod")]
    [InlineData("prod-cpu")]
    [InlineData("staging")]
    public void Rule12_the_model_worker_HPA_also_scales_on_per_model_queue_depth(string overlay)
    {
        var f = new List<string>();
        var rendered = fixture.Render(overlay);
        var hpa = rendered.OfKind("HorizontalPodAutoscaler").FirstOrDefault(h => (string?)h["spec"]!["scaleTargetRef"]!["name"] == "model-worker");
        if (hpa is null)
        {
            f.Add("Deployment/model-worker: no HorizontalPodAutoscaler");
            Pass(f);
            return;
        }

        var id = Rendered.Id(hpa);
        var metrics = hpa["spec"]!["metrics"]?.AsArray() ?? [];
        var queue = metrics.FirstOrDefault(m => (string?)m!["type"] == "Pods" && (string?)m["pods"]?["metric"]?["name"] == "platform_model_queue_depth_max");
        if (queue is null) f.Add($"{id}: spec.metrics needs a Pods metric platform_model_queue_depth_max (per-model queue depth)");
        else if ((string?)queue["pods"]!["target"]?["type"] != "AverageValue" || queue["pods"]!["target"]?["averageValue"] is null)
            f.Add($"{id}: the queue-depth metric needs an AverageValue target");
        if (!metrics.Any(m => (string?)m!["resource"]?["name"] == "cpu")) f.Add($"{id}: spec.metrics must keep its cpu target besides queue depth");

        // prometheus-adapter serves platform_model_queue_depth_max from this recorded series (docs/rollouts.md, Autoscaling).
        var recorded = rendered.OfKind("PrometheusRule").SelectMany(r => r["spec"]!["groups"]!.AsArray()).SelectMany(g => g!["rules"]!.AsArray())
            .FirstOrDefault(r => (string?)r!["record"] == "platform_model_queue_depth:max_by_pod");
        if (recorded is null) f.Add("PrometheusRule: no recording rule platform_model_queue_depth:max_by_pod");
        else if (!((string?)recorded["expr"] ?? "").Contains("max by (namespace, pod) (platform_model_queue_depth", StringComparison.Ordinal))
            f.Add("PrometheusRule: platform_model_queue_depth:max_by_pod must be max by (namespace, pod) of platform_model_queue_depth");

        Pass(f);
    }

    [Fact]
    public void Rule13_replicas_spread_across_zones_and_avoid_sharing_hosts()
    {
        var f = new List<string>();
        foreach (var d in Prod.OfKind("Deployment"))
        {
            var id = Rendered.Id(d);
            var spec = d["spec"]!["template"]!["spec"]!;
            var zone = (spec["topologySpreadConstraints"]?.AsArray() ?? []).FirstOrDefault(t => (string?)t!["topologyKey"] == "topology.kubernetes.io/zone");
            if (zone is null) f.Add($"{id}: spec.template.spec.topologySpreadConstraints needs topology.kubernetes.io/zone");
            else if ((int?)zone["maxSkew"] != 1) f.Add($"{id}: zone topologySpreadConstraint maxSkew must be 1");
            var anti = spec["affinity"]?["podAntiAffinity"];
            var terms = (anti?["preferredDuringSchedulingIgnoredDuringExecution"]?.AsArray() ?? []).Select(t => t!["podAffinityTerm"])
                .Concat(anti?["requiredDuringSchedulingIgnoredDuringExecution"]?.AsArray() ?? []);
            if (!terms.Any(t => (string?)t?["topologyKey"] == "kubernetes.io/hostname")) f.Add($"{id}: spec.template.spec.affinity.podAntiAffinity needs a kubernetes.io/hostname term");
        }

        Pass(f);
    }

    [Fact]
    public void Rule14_network_policies_deny_by_default_and_allow_exactly_the_models_edges()
    {
        var f = new List<string>();
        var policies = Prod.OfKind("NetworkPolicy").ToList();
        var deny = policies.FirstOrDefault(p => p["spec"]!["podSelector"]!.AsObject().Count == 0 && p["spec"]!["ingress"] is null && p["spec"]!["egress"] is null);
        var denyTypes = deny?["spec"]!["policyTypes"]?.AsArray().Select(t => (string?)t).ToList() ?? [];
        if (!denyTypes.Contains("Ingress") || !denyTypes.Contains("Egress")) f.Add("NetworkPolicy: a namespace-wide default-deny for Ingress and Egress is missing");

        bool Allows(string direction, string pod, Func<JsonNode, bool> peer, int port) => policies.Any(p =>
            Selects(p, pod) && (p["spec"]![direction]?.AsArray() ?? []).Any(rule =>
                (rule![direction == "egress" ? "to" : "from"]?.AsArray() ?? []).Any(x => peer(x!)) &&
                (rule["ports"]?.AsArray() ?? []).Any(x => (int?)x!["port"] == port)));

        if (!Allows("egress", "inference-api", x => (string?)x["podSelector"]?["matchLabels"]?["k8s-app"] == "kube-dns", 53)) f.Add("NetworkPolicy: DNS egress (kube-dns:53) is not allowed");
        if (!Allows("egress", "inference-api", x => (string?)x["namespaceSelector"]?["matchLabels"]?["kubernetes.io/metadata.name"] == "observability", 4317)) f.Add("NetworkPolicy: OTLP egress to the observability namespace is not allowed");
        if (!Allows("ingress", "inference-api", x => (string?)x["namespaceSelector"]?["matchLabels"]?["kubernetes.io/metadata.name"] == "ingress-nginx", 8080)) f.Add("NetworkPolicy: ingress controller to inference-api is not allowed");
        foreach (var other in new[] { "admin-api", "model-worker", "context-enrichment", "postgres", "redis", "objectstore" })
        {
            if (policies.Any(p => Selects(p, other) && (p["spec"]!["ingress"]?.AsArray() ?? []).Any(r => (r!["from"]?.AsArray() ?? []).Any(x =>
                (string?)x!["namespaceSelector"]?["matchLabels"]?["kubernetes.io/metadata.name"] == "ingress-nginx"))))
            {
                f.Add($"NetworkPolicy: the ingress controller may reach {other}; only the public API may be exposed");
            }
        }

        // Edges from the AppHost's references (see aspirate-output/network-policies, generated).
        (string From, string To, int Port)[] edges =
        [
            ("admin-api", "postgres", 5432), ("admin-api", "redis", 6379), ("admin-api", "objectstore", 9000),
            ("model-worker", "postgres", 5432), ("model-worker", "redis", 6379), ("model-worker", "objectstore", 9000),
            ("context-enrichment", "postgres", 5432), ("context-enrichment", "redis", 6379), ("context-enrichment", "model-worker", 8080),
            ("inference-api", "postgres", 5432), ("inference-api", "redis", 6379), ("inference-api", "admin-api", 8080),
            ("inference-api", "context-enrichment", 8080), ("inference-api", "model-worker", 8080),
        ];
        foreach (var (from, to, port) in edges)
        {
            if (!Allows("egress", from, x => (string?)x["podSelector"]?["matchLabels"]?["app.kubernetes.io/name"] == to, port)) f.Add($"NetworkPolicy: egress {from} -> {to}:{port} is not allowed");
            if (!Allows("ingress", to, x => (string?)x["podSelector"]?["matchLabels"]?["app.kubernetes.io/name"] == from, port)) f.Add($"NetworkPolicy: ingress {to} <- {from}:{port} is not allowed");
        }

        // Data stores only from their clients: every pod-selecting ingress rule on them names a known client.
        var clients = edges.GroupBy(e => e.To).ToDictionary(g => g.Key, g => g.Select(e => e.From).Append("postgres-backup").ToHashSet());
        foreach (var store in DataStores)
        {
            foreach (var p in policies.Where(p => Selects(p, store)))
            {
                foreach (var rule in p["spec"]!["ingress"]?.AsArray() ?? [])
                {
                    if (rule!["from"] is null) f.Add($"{Rendered.Id(p)}: spec.ingress[] without 'from' opens {store} to everyone");
                    foreach (var peer in rule["from"]?.AsArray() ?? [])
                    {
                        var name = (string?)peer!["podSelector"]?["matchLabels"]?["app.kubernetes.io/name"];
                        if (name is null || !clients[store].Contains(name)) f.Add($"{Rendered.Id(p)}: spec.ingress[].from admits '{name ?? peer.ToJsonString()}', not a client of {store}");
                    }
                }
            }
        }

        Pass(f);
    }

    private static bool Selects(JsonObject policy, string app)
    {
        var selector = policy["spec"]!["podSelector"]!;
        if (selector.AsObject().Count == 0) return true;
        if ((string?)selector["matchLabels"]?["app.kubernetes.io/name"] == app) return true;
        return (selector["matchExpressions"]?.AsArray() ?? []).Any(e => (string?)e!["key"] == "app.kubernetes.io/name" && (string?)e["operator"] == "In" &&
            e["values"]!.AsArray().Any(v => (string?)v == app));
    }

    [Fact]
    public void Rule15_credentials_come_from_ExternalSecrets_never_literals()
    {
        var f = new List<string>();
        var external = Prod.OfKind("ExternalSecret").Select(e => (string?)(e["spec"]!["target"]?["name"] ?? e["metadata"]!["name"])).ToHashSet();
        foreach (var s in Prod.OfKind("Secret")) f.Add($"{Rendered.Id(s)}: Secrets must not be rendered (their values would be in the repository)");
        foreach (var p in Workloads())
        {
            foreach (var (c, path) in p.Containers)
            {
                foreach (var e in c["env"]?.AsArray() ?? [])
                {
                    var name = (string)e!["name"]!;
                    var secretRef = (string?)e["valueFrom"]?["secretKeyRef"]?["name"];
                    if (secretRef is not null && !external.Contains(secretRef)) f.Add($"{p.Id}: {path}.env[{name}] reads Secret/{secretRef}, which no ExternalSecret creates");
                    if ((string?)e["value"] is { } v && SecretName().IsMatch(name) && !v.Contains("$(", StringComparison.Ordinal)) f.Add($"{p.Id}: {path}.env[{name}] has a literal value");
                    if ((string?)e["value"] is { } cs && SecretInValue().IsMatch(cs)) f.Add($"{p.Id}: {path}.env[{name}] embeds a literal credential");
                }
            }
        }

        foreach (var cm in Prod.OfKind("ConfigMap"))
        {
            foreach (var (key, value) in cm["data"]?.AsObject() ?? [])
            {
                if (SecretName().IsMatch(key) || SecretInValue().IsMatch((string?)value ?? string.Empty)) f.Add($"{Rendered.Id(cm)}: data.{key} looks like a credential");
            }
        }

        foreach (var es in Prod.OfKind("ExternalSecret"))
        {
            if (!((string)es["apiVersion"]!).StartsWith("external-secrets.io/", StringComparison.Ordinal)) f.Add($"{Rendered.Id(es)}: apiVersion must be external-secrets.io");
        }

        Pass(f);
    }

    [Fact]
    public void Rule16_namespace_is_not_default_and_enforces_restricted_pod_security()
    {
        var f = new List<string>();
        var ns = Prod.OfKind("Namespace").SingleOrDefault();
        if (ns is null) { Pass(["Namespace: not rendered"]); return; }
        var name = (string)ns["metadata"]!["name"]!;
        if (name == "default") f.Add("Namespace: must not be default");
        foreach (var mode in new[] { "enforce", "audit", "warn" })
        {
            if ((string?)ns["metadata"]!["labels"]?[$"pod-security.kubernetes.io/{mode}"] != "restricted") f.Add($"Namespace/{name}: metadata.labels.pod-security.kubernetes.io/{mode} must be restricted");
        }

        foreach (var o in Prod.Objects.Where(o => o["metadata"]?["namespace"] is not null))
        {
            if ((string?)o["metadata"]!["namespace"] != name) f.Add($"{Rendered.Id(o)}: metadata.namespace must be {name}");
        }

        Pass(f);
    }

    [Fact]
    public void Rule17_namespace_has_a_ResourceQuota_and_a_LimitRange()
    {
        var f = new List<string>();
        if (!Prod.OfKind("ResourceQuota").Any()) f.Add("ResourceQuota: none rendered");
        if (!Prod.OfKind("LimitRange").Any()) f.Add("LimitRange: none rendered");
        Pass(f);
    }

    [Fact]
    public void Rule18_workloads_have_priority_classes_and_gpu_workers_are_scheduled_on_gpu_nodes()
    {
        var f = new List<string>();
        var classes = Prod.OfKind("PriorityClass").Select(p => (string?)p["metadata"]!["name"]).ToHashSet();
        foreach (var p in Workloads())
        {
            var pc = (string?)p.Spec["priorityClassName"];
            if (pc is null) f.Add($"{p.Id}: {p.Path}.priorityClassName must be set");
            else if (!classes.Contains(pc)) f.Add($"{p.Id}: {p.Path}.priorityClassName '{pc}' has no PriorityClass");
        }

        var worker = Get("Deployment", "model-worker")["spec"]!["template"]!["spec"]!;
        if (!(worker["tolerations"]?.AsArray() ?? []).Any(t => (string?)t!["key"] == "nvidia.com/gpu" && (string?)t["effect"] == "NoSchedule")) f.Add("Deployment/model-worker: spec.template.spec.tolerations must tolerate nvidia.com/gpu:NoSchedule");
        if (worker["nodeSelector"] is not JsonObject { Count: > 0 } && worker["affinity"]?["nodeAffinity"] is null) f.Add("Deployment/model-worker: spec.template.spec.nodeSelector must select GPU nodes");
        Pass(f);
    }

    [Fact]
    public void Rule19_data_stores_are_StatefulSets_with_PVCs_and_probes_and_Postgres_is_backed_up()
    {
        var f = new List<string>();
        foreach (var s in DataStores)
        {
            var set = Prod.OfKind("StatefulSet").FirstOrDefault(o => (string?)o["metadata"]!["name"] == s);
            if (set is null) { f.Add($"StatefulSet/{s}: missing"); continue; }
            var claims = set["spec"]!["volumeClaimTemplates"]?.AsArray() ?? [];
            if (claims.Count == 0) f.Add($"StatefulSet/{s}: spec.volumeClaimTemplates is empty");
            foreach (var c in claims)
            {
                if (c!["spec"]?["storageClassName"] is null) f.Add($"StatefulSet/{s}: volumeClaimTemplates[{c["metadata"]!["name"]}].spec.storageClassName must be set by the overlay");
            }

            var container = set["spec"]!["template"]!["spec"]!["containers"]![0]!;
            if (container["readinessProbe"] is null || container["livenessProbe"] is null) f.Add($"StatefulSet/{s}: containers[0] needs readiness and liveness probes");
        }

        var backup = Prod.OfKind("CronJob").FirstOrDefault(c => ((string?)c["metadata"]!["name"] ?? "").Contains("backup", StringComparison.Ordinal));
        if (backup is null) f.Add("CronJob: no Postgres backup");
        else
        {
            var spec = backup["spec"]!["jobTemplate"]!["spec"]!["template"]!["spec"]!;
            var all = (spec["initContainers"]?.AsArray() ?? []).Concat(spec["containers"]!.AsArray()).ToList();
            if (!all.Any(c => c!["command"]?.AsArray().Any(x => ((string?)x ?? "").Contains("pg_dump", StringComparison.Ordinal)) == true)) f.Add($"{Rendered.Id(backup)}: no container runs pg_dump");
            if (!all.Any(c => (c!["env"]?.AsArray() ?? []).Any(e => ((string?)e!["value"] ?? "").Contains("objectstore", StringComparison.Ordinal)))) f.Add($"{Rendered.Id(backup)}: no container writes to object storage");
        }

        Pass(f);
    }

    [Fact]
    public void Rule20_services_are_monitored_and_alerted_on()
    {
        var f = new List<string>();
        foreach (var s in Services)
        {
            if (!Prod.OfKind("ServiceMonitor").Any(m => (string?)m["spec"]!["selector"]?["matchLabels"]?["app.kubernetes.io/name"] == s)) f.Add($"Service/{s}: no ServiceMonitor selects it");
        }

        var exprs = Prod.OfKind("PrometheusRule").SelectMany(r => r["spec"]!["groups"]!.AsArray()).SelectMany(g => g!["rules"]!.AsArray())
            .Select(r => (Alert: (string?)r!["alert"], Expr: (string?)r["expr"] ?? "")).ToList();
        (string What, Func<string, bool> Test)[] wanted =
        [
            ("service down", e => e.Contains("up{", StringComparison.Ordinal) && e.Contains("== 0", StringComparison.Ordinal)),
            ("5xx rate > 5 %", e => e.Contains("5..", StringComparison.Ordinal) && e.Contains("0.05", StringComparison.Ordinal)),
            ("p95 latency", e => e.Contains("histogram_quantile(0.95", StringComparison.Ordinal)),
            ("budget consumed > 95 %", e => e.Contains("budget", StringComparison.Ordinal) && e.Contains("0.95", StringComparison.Ordinal)),
            ("queue depth", e => e.Contains("queue_depth", StringComparison.Ordinal)),
            ("Redis memory near maxmemory", e => e.Contains("platform_redis_memory_used_bytes", StringComparison.Ordinal) && e.Contains("platform_redis_memory_limit_bytes", StringComparison.Ordinal)),
            ("usage records waiting in Redis", e => e.Contains("platform_usage_backlog", StringComparison.Ordinal)),
        ];
        foreach (var (what, test) in wanted)
        {
            if (!exprs.Any(x => x.Alert is not null && test(x.Expr))) f.Add($"PrometheusRule: no alert for {what}");
        }

        Pass(f);
    }

    [Fact]
    public void Rule21_configuration_changes_roll_the_pods()
    {
        var f = new List<string>();
        var configMaps = Prod.OfKind("ConfigMap").Select(c => (string)c["metadata"]!["name"]!).ToHashSet();
        foreach (var name in configMaps.Where(n => !HashSuffix().IsMatch(n))) f.Add($"ConfigMap/{name}: name has no content-hash suffix (use a configMapGenerator with hashing on)");
        foreach (var p in Workloads())
        {
            var reload = ((string?)p.Spec.Parent?["metadata"]?["annotations"]?["secret.reloader.stakater.com/reload"] ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries);
            foreach (var (c, path) in p.Containers)
            {
                foreach (var r in c["envFrom"]?.AsArray() ?? [])
                {
                    if ((string?)r!["configMapRef"]?["name"] is { } cm && !configMaps.Contains(cm)) f.Add($"{p.Id}: {path}.envFrom references ConfigMap/{cm}, which is not the generated (hashed) one");
                }

                foreach (var secret in (c["env"]?.AsArray() ?? []).Select(e => (string?)e!["valueFrom"]?["secretKeyRef"]?["name"]).OfType<string>().Distinct())
                {
                    // ExternalSecret-managed Secrets cannot carry a hash suffix; Reloader rolls the pods instead.
                    if (!reload.Contains(secret)) f.Add($"{p.Id}: pod template metadata.annotations[secret.reloader.stakater.com/reload] must list Secret/{secret}");
                }
            }
        }

        f.RemoveAll(x => x.StartsWith("CronJob/", StringComparison.Ordinal)); // a backup reads the Secret fresh on every run
        Pass(f);
    }

    [Fact]
    public void Rule22_services_are_ClusterIP_and_the_public_API_has_a_TLS_ingress()
    {
        var f = new List<string>();
        foreach (var s in Prod.OfKind("Service"))
        {
            if ((string?)s["spec"]!["type"] is not (null or "ClusterIP")) f.Add($"{Rendered.Id(s)}: spec.type must be ClusterIP");
        }

        var ingresses = Prod.OfKind("Ingress").ToList();
        var api = ingresses.FirstOrDefault(i => (i["spec"]!["rules"]?.AsArray() ?? []).Any(r => (r!["http"]?["paths"]?.AsArray() ?? [])
            .Any(p => (string?)p!["backend"]?["service"]?["name"] == "inference-api")));
        if (api is null) f.Add("Ingress: none routes to inference-api");
        else if (api["spec"]!["tls"] is not JsonArray { Count: > 0 } tls || tls.Any(t => t!["secretName"] is null)) f.Add($"{Rendered.Id(api)}: spec.tls with a secretName is required");
        foreach (var i in ingresses)
        {
            var backends = (i["spec"]!["rules"]?.AsArray() ?? []).SelectMany(r => r!["http"]?["paths"]?.AsArray() ?? []).Select(p => (string?)p!["backend"]?["service"]?["name"]);
            foreach (var b in backends.Where(b => b != "inference-api")) f.Add($"{Rendered.Id(i)}: exposes {b}; only the public API may be exposed");
        }

        Pass(f);
    }

    [GeneratedRegex(@"^[a-z0-9.\-/:]+:(?<tag>[A-Za-z0-9._-]+)@sha256:[a-f0-9]{64}$")]
    private static partial Regex ImageRef();

    [GeneratedRegex(@"(PASSWORD|SECRET|TOKEN|API_KEY|api-key)", RegexOptions.IgnoreCase)]
    private static partial Regex SecretName();

    [GeneratedRegex(@"(Password|SecretKey|password)=(?!\$\()[^;,]+")]
    private static partial Regex SecretInValue();

    [GeneratedRegex(@"-[a-z0-9]{10}$")]
    private static partial Regex HashSuffix();
}
