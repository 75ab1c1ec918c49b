using System.Text.Json;
using System.Text.Json.Nodes;

namespace Platform.Manifests.Tests;

/// <summary>Every overlay renders, and every object it renders is valid for the Kubernetes API (and its CRDs).</summary>
public sealed class OverlayTests(PublishFixture fixture)
{
    public static TheoryData<string> Overlays => new(PublishFixture.Overlays);

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Overlay_renders_with_kubectl_kustomize(string overlay)
    {
        var r = fixture.Render(overlay);
        Assert.True(r.ExitCode == 0, $"kubectl kustomize manifests/overlays/{overlay} failed:\n{r.Error}");
        Assert.NotEmpty(r.Objects);
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public async Task Every_object_validates_against_the_API_schema_without_unknown_fields(string overlay)
    {
        var r = fixture.Render(overlay);
        Assert.Equal(0, r.ExitCode);
        var errors = await Validator.ValidateAsync(fixture.RepositoryRoot, r.Objects);
        Assert.True(errors.Count == 0, $"{overlay}:\n" + string.Join('\n', errors));
    }

    [Fact]
    public async Task The_validator_rejects_unknown_fields_and_schema_errors()
    {
        // Guards the guard: a misspelt hardening field must fail, as must a wrong type.
        var bad = Yaml.ReadDocuments("""
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: typo}
            spec:
              selector: {matchLabels: {a: b}}
              template:
                metadata: {labels: {a: b}}
                spec:
                  containers:
                    - name: c
                      image: i:1
                      securityContext: {readOnlyRootFileSystem: true}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: wrong}
            spec: {ports: [{port: "eighty"}]}
            """);
        var errors = await Validator.ValidateAsync(fixture.RepositoryRoot, bad);
        Assert.Contains(errors, e => e.Contains("Deployment/typo", StringComparison.Ordinal) && e.Contains("readOnlyRootFileSystem", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("Service/wrong", StringComparison.Ordinal));
    }

    [Fact]
    public void Dev_is_light_but_keeps_prods_security_contexts()
    {
        var dev = fixture.Render("dev");
        var prod = fixture.Render("prod");
        Assert.Empty(dev.OfKind("HorizontalPodAutoscaler", "PodDisruptionBudget", "ResourceQuota"));
        foreach (var d in dev.OfKind("Deployment", "StatefulSet"))
        {
            Assert.Equal(1, (int?)d["spec"]!["replicas"]);
            var twin = prod.OfKind((string)d["kind"]!).Single(p => Rendered.Id(p) == Rendered.Id(d));
            Assert.True(JsonNode.DeepEquals(d["spec"]!["template"]!["spec"]!["securityContext"], twin["spec"]!["template"]!["spec"]!["securityContext"]),
                $"{Rendered.Id(d)}: pod securityContext differs between dev and prod");
            Assert.True(JsonNode.DeepEquals(d["spec"]!["template"]!["spec"]!["containers"]![0]!["securityContext"],
                twin["spec"]!["template"]!["spec"]!["containers"]![0]!["securityContext"]),
                $"{Rendered.Id(d)}: container securityContext differs between dev and prod");
        }
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Postgres_connections_at_the_largest_scale_fit_the_servers_max_connections(string overlay)
    {
        var r = fixture.Render(overlay);
        var server = r.OfKind("StatefulSet").Single(s => (string?)s["metadata"]!["name"] == "postgres");
        var setting = (server["spec"]!["template"]!["spec"]!["containers"]![0]!["args"]?.AsArray() ?? [])
            .Select(a => (string?)a).SingleOrDefault(a => a?.StartsWith("max_connections=", StringComparison.Ordinal) == true);
        Assert.True(setting is not null, $"{overlay}: the postgres StatefulSet runs with the image's default max_connections (100)");
        var maxConnections = int.Parse(setting["max_connections=".Length..], System.Globalization.CultureInfo.InvariantCulture);
        var configMaps = r.OfKind("ConfigMap").ToDictionary(c => (string)c["metadata"]!["name"]!);

        var budget = new List<string>();
        var total = 0;
        foreach (var deployment in r.OfKind("Deployment"))
        {
            var name = (string)deployment["metadata"]!["name"]!;
            var container = deployment["spec"]!["template"]!["spec"]!["containers"]![0]!;
            if (container["env"]?.AsArray().Any(e => (string?)e!["name"] == "ConnectionStrings__platformdb") != true)
            {
                continue;
            }

            // Every process that connects has a bound: Npgsql's default (100) alone would exceed the server's limit.
            var pool = (container["envFrom"]?.AsArray() ?? [])
                .Select(e => (string?)e!["configMapRef"]?["name"])
                .Select(n => n is not null && configMaps.TryGetValue(n, out var map) ? (string?)map["data"]?["Postgres__MaxPoolSize"] : null)
                .SingleOrDefault(v => v is not null);
            Assert.True(pool is not null, $"{overlay}: Deployment/{name} connects to Postgres without Postgres__MaxPoolSize");

            var hpa = r.OfKind("HorizontalPodAutoscaler").SingleOrDefault(h => (string?)h["spec"]!["scaleTargetRef"]!["name"] == name);
            var replicas = (int?)hpa?["spec"]!["maxReplicas"] ?? (int?)deployment["spec"]!["replicas"] ?? 1;
            // A rolling update runs the surge pods beside the old ones.
            var surge = deployment["spec"]!["strategy"]?["rollingUpdate"]?["maxSurge"] is { } s
                ? s.GetValueKind() == JsonValueKind.Number ? (int)s : (int)Math.Ceiling(replicas * int.Parse(((string)s!).TrimEnd('%'), System.Globalization.CultureInfo.InvariantCulture) / 100.0)
                : (int)Math.Ceiling(replicas * 0.25);
            var connections = (replicas + surge) * int.Parse(pool!, System.Globalization.CultureInfo.InvariantCulture);
            budget.Add($"{name} ({replicas} + {surge}) x {pool} = {connections}");
            total += connections;
        }

        Assert.Equal(4, budget.Count);
        // pg_dump in a backup job: one connection, never two jobs at once.
        foreach (var job in r.OfKind("CronJob").Where(j => j.ToJsonString().Contains("pg_dump", StringComparison.Ordinal)))
        {
            Assert.Equal("Forbid", (string?)job["spec"]!["concurrencyPolicy"]);
            budget.Add($"{job["metadata"]!["name"]} 1");
            total += 1;
        }

        // Postgres keeps superuser_reserved_connections (3) for administrators.
        Assert.True(total + 3 <= maxConnections,
            $"{overlay}: {total} connections at the largest scale + 3 reserved exceed max_connections={maxConnections}: {string.Join(", ", budget)}");
    }

    [Fact]
    public void Staging_mirrors_prod_at_a_smaller_scale()
    {
        var staging = fixture.Render("staging");
        var prod = fixture.Render("prod");
        Assert.Equal(prod.Objects.Select(Rendered.Id).Order(), staging.Objects.Select(Rendered.Id).Order());
        foreach (var hpa in staging.OfKind("HorizontalPodAutoscaler"))
        {
            var twin = prod.OfKind("HorizontalPodAutoscaler").Single(p => Rendered.Id(p) == Rendered.Id(hpa));
            Assert.True((int)hpa["spec"]!["maxReplicas"]! <= (int)twin["spec"]!["maxReplicas"]!, $"{Rendered.Id(hpa)}: staging scales above prod");
        }
    }
}

/// <summary>Runs validator/validate.mjs (kubernetes-models, pinned by validator/package-lock.json).</summary>
public static class Validator
{
    public static async Task<List<string>> ValidateAsync(string repositoryRoot, IEnumerable<JsonObject> objects)
    {
        var directory = Path.Combine(repositoryRoot, "tests", "Platform.Manifests.Tests", "validator");
        if (!File.Exists(Path.Combine(directory, "node_modules", ".package-lock.json")))
        {
            var install = await PublishFixture.RunAsync("npm", ["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], null, directory);
            Assert.True(install.ExitCode == 0, $"npm ci in {directory} failed (eng/install.sh installs it):\n{install.Stderr}");
        }

        var input = new JsonArray(objects.Select(o => (JsonNode)o.DeepClone()).ToArray()).ToJsonString();
        var (exit, stdout, stderr) = await PublishFixture.RunAsync("node", [Path.Combine(directory, "validate.mjs")], input, directory);
        Assert.True(exit == 0, $"validate.mjs failed:\n{stderr}");
        return JsonNode.Parse(stdout)!.AsArray()
            .Select(e => $"{e!["kind"]}/{e["name"]}: {e["message"]}")
            .ToList();
    }
}
