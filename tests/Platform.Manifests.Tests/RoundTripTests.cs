using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Platform.Manifests.Tests;

/// <summary>
/// Aspire's manifest → aspirate-output: every workload, binding, volume, environment variable, secret and reference of
/// the AppHost's real manifest became the Kubernetes object or field it stands for. Read from the manifest's side, so a
/// resource or reference the generator drops fails here by name.
/// </summary>
public sealed partial class RoundTripTests(PublishFixture fixture)
{
    private readonly GeneratedOutput _output = GeneratedOutput.Read(fixture.GeneratedDirectory);

    private JsonObject Resources => fixture.Manifest["resources"]!.AsObject();

    private IEnumerable<(string Name, JsonObject Resource)> Workloads => Resources
        .Where(kv => (string?)kv.Value!["type"] is "project.v0" or "container.v0")
        .Select(kv => (kv.Key, kv.Value!.AsObject()));

    private static bool IsProject(JsonObject r) => (string?)r["type"] == "project.v0";

    private static int TargetPort(JsonObject r, JsonObject b) => (int?)b["targetPort"] ?? ((string?)b["scheme"] == "https" ? 8443 : 8080);

    [Fact]
    public void Every_workload_became_a_Deployment_or_StatefulSet_with_its_ServiceAccount_and_image()
    {
        var f = new List<string>();
        var root = _output.Files["kustomization.yaml"].Single()["resources"]!.AsArray().Select(r => (string?)r).ToList();
        foreach (var (name, r) in Workloads)
        {
            var kind = r["volumes"] is JsonArray { Count: > 0 } ? "StatefulSet" : "Deployment";
            var workload = _output.Workload(name);
            if ((string?)workload["kind"] != kind) f.Add($"{name}: generated as {workload["kind"]}, expected {kind}");
            var image = (string?)_output.Container(name)["image"];
            var expected = IsProject(r) ? $"registry.example.com/platform/{name}:1.0.0" : (string?)r["image"];
            if (image != expected) f.Add($"{kind}/{name}: containers[0].image is '{image}', expected '{expected}'");
            if ((string?)workload["spec"]!["template"]!["spec"]!["serviceAccountName"] != name) f.Add($"{kind}/{name}: spec.template.spec.serviceAccountName must be {name}");
            _output.Get("ServiceAccount", name);
            if (!root.Contains(name)) f.Add($"kustomization.yaml: resources does not list {name}");
            if (r["entrypoint"] is JsonValue entrypoint && (string?)_output.Container(name)["command"]?[0] != (string)entrypoint!) f.Add($"{kind}/{name}: containers[0].command must be the entrypoint '{entrypoint}'");
            var args = r["args"]?.AsArray().Select(a => (string?)a).ToList() ?? [];
            var generatedArgs = _output.Container(name)["args"]?.AsArray().Select(a => (string?)a).ToList() ?? [];
            if (args.Count != generatedArgs.Count) f.Add($"{kind}/{name}: containers[0].args has {generatedArgs.Count} entries, the manifest {args.Count}");
        }

        Assert.True(f.Count == 0, string.Join('\n', f));
    }

    [Fact]
    public void Every_binding_became_a_Service_port_and_a_container_port()
    {
        var f = new List<string>();
        foreach (var (name, r) in Workloads)
        {
            foreach (var (bindingName, node) in r["bindings"]?.AsObject() ?? [])
            {
                var b = node!.AsObject();
                var target = TargetPort(r, b);
                var servicePort = _output.Get("Service", name)["spec"]!["ports"]!.AsArray().SingleOrDefault(p => (string?)p!["name"] == bindingName);
                if (servicePort is null) { f.Add($"Service/{name}: spec.ports has no '{bindingName}'"); continue; }
                if ((int?)servicePort["port"] != ((int?)b["port"] ?? target)) f.Add($"Service/{name}: spec.ports[{bindingName}].port is {servicePort["port"]}");
                if ((string?)servicePort["targetPort"] != bindingName) f.Add($"Service/{name}: spec.ports[{bindingName}].targetPort must name the container port");
                var h2c = (string?)b["transport"] == "http2" && (string?)b["scheme"] == "http";
                if (h2c != ((string?)servicePort["appProtocol"] == "kubernetes.io/h2c")) f.Add($"Service/{name}: spec.ports[{bindingName}].appProtocol is '{servicePort["appProtocol"]}' for transport {b["transport"]}");
                var containerPort = _output.Container(name)["ports"]?.AsArray().SingleOrDefault(p => (string?)p!["name"] == bindingName);
                if ((int?)containerPort?["containerPort"] != target) f.Add($"{name}: containers[0].ports[{bindingName}].containerPort must be {target}");
            }
        }

        Assert.True(f.Count == 0, string.Join('\n', f));
    }

    [Fact]
    public void Every_volume_became_a_claim_mounted_at_its_target()
    {
        var f = new List<string>();
        foreach (var (name, r) in Workloads)
        {
            foreach (var v in r["volumes"]?.AsArray() ?? [])
            {
                var volume = (string)v!["name"]!;
                var claims = _output.Workload(name)["spec"]!["volumeClaimTemplates"]?.AsArray() ?? [];
                if (!claims.Any(c => (string?)c!["metadata"]!["name"] == volume)) f.Add($"StatefulSet/{name}: spec.volumeClaimTemplates has no '{volume}'");
                var mount = _output.Container(name)["volumeMounts"]?.AsArray().SingleOrDefault(m => (string?)m!["name"] == volume);
                if ((string?)mount?["mountPath"] != (string?)v["target"]) f.Add($"StatefulSet/{name}: containers[0].volumeMounts[{volume}].mountPath must be {v["target"]}");
            }
        }

        Assert.True(f.Count == 0, string.Join('\n', f));
    }

    [Fact]
    public void Every_environment_variable_reached_the_pod_resolved()
    {
        var f = new List<string>();
        foreach (var (name, r) in Workloads)
        {
            var configMap = _output.ConfigMap(name);
            foreach (var (variable, node) in r["env"]?.AsObject() ?? [])
            {
                var value = (string)node!;
                var env = _output.Env(name, variable);
                var literal = configMap.GetValueOrDefault(variable);
                if (env is null && literal is null) { f.Add($"{name}: env {variable} is neither in ConfigMap {name}-env nor in containers[0].env"); continue; }
                var generated = literal ?? (string?)env!["value"];
                if (generated is not null && ManifestExpression().IsMatch(generated)) f.Add($"{name}: env {variable} still holds a manifest expression: {generated}");

                var whole = ManifestExpression().Match(value);
                if (!value.Contains('{', StringComparison.Ordinal) && literal != value)
                {
                    f.Add($"{name}: env {variable} must be the literal '{value}' in ConfigMap {name}-env, is '{literal}'");
                }
                else if (whole.Success && whole.Value == value && Resources[whole.Groups["r"].Value] is JsonObject target)
                {
                    var property = whole.Groups["p"].Value;
                    if ((string?)target["type"] == "parameter.v0" && property == "value" && (bool?)target["inputs"]?["value"]?["secret"] == true &&
                        (string?)env?["valueFrom"]?["secretKeyRef"]?["name"] != whole.Groups["r"].Value)
                    {
                        f.Add($"{name}: env {variable} must be a secretKeyRef to Secret/{whole.Groups["r"].Value}");
                    }

                    var binding = BindingProperty().Match(property);
                    if (binding.Success)
                    {
                        var b = target["bindings"]![binding.Groups["b"].Value]!.AsObject();
                        var port = (int?)b["port"] ?? TargetPort(target, b);
                        var expected = binding.Groups["p"].Value switch
                        {
                            "url" => $"{b["scheme"]}://{whole.Groups["r"].Value}:{port}",
                            "host" => whole.Groups["r"].Value,
                            "port" => $"{port}",
                            "targetPort" => $"{TargetPort(target, b)}",
                            _ => literal,
                        };
                        if (literal != expected) f.Add($"{name}: env {variable} ({value}) must be '{expected}' in ConfigMap {name}-env, is '{literal}'");
                    }
                }

                // Every secret a value reads is expanded from a variable holding that Secret, declared earlier in the pod.
                foreach (Match m in SecretVariable().Matches(generated ?? string.Empty))
                {
                    var envList = _output.Container(name)["env"]!.AsArray().Select(e => (string?)e!["name"]).ToList();
                    var declared = envList.IndexOf(m.Groups["v"].Value);
                    if (declared < 0 || declared > envList.IndexOf(variable)) f.Add($"{name}: env {variable} expands $({m.Groups["v"].Value}), which is not declared before it");
                }
            }
        }

        Assert.True(f.Count == 0, string.Join('\n', f));
    }

    [Fact]
    public void Every_secret_a_pod_reads_comes_from_an_ExternalSecret_of_its_parameter()
    {
        var f = new List<string>();
        var secretParameters = Resources.Where(kv => (string?)kv.Value!["type"] == "parameter.v0" && (bool?)kv.Value["inputs"]?["value"]?["secret"] == true)
            .Select(kv => kv.Key).ToHashSet();
        var read = _output.Objects.Where(o => (string?)o["kind"] is "Deployment" or "StatefulSet")
            .SelectMany(o => o["spec"]!["template"]!["spec"]!["containers"]!.AsArray())
            .SelectMany(c => c!["env"]?.AsArray() ?? [])
            .Select(e => (string?)e!["valueFrom"]?["secretKeyRef"]?["name"]).OfType<string>().ToHashSet();
        foreach (var secret in read)
        {
            var es = _output.Files.GetValueOrDefault($"external-secrets/{secret}.yaml")?.Single();
            if (es is null) { f.Add($"Secret/{secret}: no external-secrets/{secret}.yaml"); continue; }
            var key = (string?)es["spec"]!["data"]![0]!["remoteRef"]!["key"];
            var parameter = key?["platform/".Length..];
            if (parameter is null || !secretParameters.Contains(parameter)) f.Add($"ExternalSecret/{secret}: spec.data[0].remoteRef.key '{key}' is not a secret parameter of the manifest");
        }

        var used = Workloads.SelectMany(w => (w.Resource["env"]?.AsObject() ?? []).Select(kv => (string)kv.Value!).Concat(w.Resource["args"]?.AsArray().Select(a => (string)a!) ?? []))
            .SelectMany(Expand).SelectMany(v => ManifestExpression().Matches(v)).Select(m => m.Groups["r"].Value).Where(secretParameters.Contains).ToHashSet();
        foreach (var p in used.Where(p => !_output.Files.ContainsKey($"external-secrets/{p}.yaml")))
        {
            f.Add($"parameter {p}: a pod reads it but external-secrets/{p}.yaml was not generated");
        }

        Assert.True(f.Count == 0, string.Join('\n', f));
    }

    [Fact]
    public void Every_reference_between_workloads_became_a_NetworkPolicy_edge()
    {
        var f = new List<string>();
        var workloads = Workloads.ToDictionary(w => w.Name, w => w.Resource);
        foreach (var (client, r) in Workloads)
        {
            var values = (r["env"]?.AsObject() ?? []).Select(kv => (string)kv.Value!).Concat(r["args"]?.AsArray().Select(a => (string)a!) ?? []);
            foreach (Match m in values.SelectMany(Expand).SelectMany(v => ManifestExpression().Matches(v)))
            {
                var binding = BindingProperty().Match(m.Groups["p"].Value);
                var server = m.Groups["r"].Value;
                if (!binding.Success || server == client || binding.Groups["p"].Value is "scheme" or "tlsEnabled" || !workloads.TryGetValue(server, out var s))
                {
                    continue;
                }

                var port = TargetPort(s, s["bindings"]![binding.Groups["b"].Value]!.AsObject());
                if (!_output.Allows(client, server, port)) f.Add($"NetworkPolicy: {client} -> {server}:{port} ({m.Value}) is not allowed by {client}-egress and {server}-ingress");
            }
        }

        Assert.True(f.Count == 0, string.Join('\n', f));
    }

    [Fact]
    public void Every_project_names_itself_announces_its_pod_IP_and_samples_its_traces()
    {
        var f = new List<string>();
        foreach (var (name, _) in Workloads.Where(w => IsProject(w.Resource)))
        {
            if ((string?)_output.Env(name, "POD_IP")?["valueFrom"]?["fieldRef"]?["fieldPath"] != "status.podIP") f.Add($"Deployment/{name}: env POD_IP must be the downward API's status.podIP");
            if ((string?)_output.Env(name, "POD_NAME")?["valueFrom"]?["fieldRef"]?["fieldPath"] != "metadata.name") f.Add($"Deployment/{name}: env POD_NAME must be the downward API's metadata.name");
            if ((string?)_output.Env(name, "OTEL_RESOURCE_ATTRIBUTES")?["value"] != "service.instance.id=$(POD_NAME)") f.Add($"Deployment/{name}: env OTEL_RESOURCE_ATTRIBUTES must name the pod");
            if (_output.ConfigMap(name).GetValueOrDefault("OTEL_SERVICE_NAME") != name) f.Add($"{name}: ConfigMap {name}-env must set OTEL_SERVICE_NAME={name}");
            // Production keeps a share of the traces, decided at the root (ServiceDefaults' OperationRootSampler reads these).
            if (_output.ConfigMap(name).GetValueOrDefault("OTEL_TRACES_SAMPLER") != "parentbased_traceidratio") f.Add($"{name}: ConfigMap {name}-env must set OTEL_TRACES_SAMPLER=parentbased_traceidratio");
            if (!double.TryParse(_output.ConfigMap(name).GetValueOrDefault("OTEL_TRACES_SAMPLER_ARG"), System.Globalization.CultureInfo.InvariantCulture, out var ratio) || ratio is <= 0 or > 1) f.Add($"{name}: ConfigMap {name}-env must set OTEL_TRACES_SAMPLER_ARG to a ratio in (0, 1]");
            var c = _output.Container(name);
            if ((string?)c["readinessProbe"]?["httpGet"]?["path"] != "/health") f.Add($"Deployment/{name}: readinessProbe must GET /health");
            if ((string?)c["livenessProbe"]?["httpGet"]?["path"] != "/alive") f.Add($"Deployment/{name}: livenessProbe must GET /alive");
            if (c["startupProbe"] is null) f.Add($"Deployment/{name}: startupProbe is missing");
        }

        Assert.True(f.Count == 0, string.Join('\n', f));
    }

    // A value with every {x.connectionString} replaced by x's connection string, recursively: what the pod really reads.
    private IEnumerable<string> Expand(string value)
    {
        yield return value;
        foreach (Match m in ManifestExpression().Matches(value))
        {
            if (m.Groups["p"].Value == "connectionString" && (string?)Resources[m.Groups["r"].Value]?["connectionString"] is { } inner)
            {
                foreach (var expanded in Expand(inner))
                {
                    yield return expanded;
                }
            }
        }
    }

    [GeneratedRegex(@"\{(?<r>[A-Za-z0-9_-]+)\.(?<p>[A-Za-z0-9_.-]+)\}")]
    private static partial Regex ManifestExpression();

    [GeneratedRegex(@"^bindings\.(?<b>[^.]+)\.(?<p>[^.]+)$")]
    private static partial Regex BindingProperty();

    [GeneratedRegex(@"(?<!\$)\$\((?<v>[A-Za-z0-9_]+)\)")]
    private static partial Regex SecretVariable();
}
