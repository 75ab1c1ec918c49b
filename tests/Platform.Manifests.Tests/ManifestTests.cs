using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Platform.Manifests.Tests;

/// <summary>
/// The manifest Aspire 13's publisher writes for the AppHost follows aspire-8.0.json's rules for each resource type
/// (written here from the schema's facts: required fields, allowed fields, value types, enums) and its expressions resolve.
/// </summary>
public sealed partial class ManifestTests(PublishFixture fixture)
{
    private static readonly Dictionary<string, (string[] Required, string[] Allowed)> Types = new()
    {
        ["project.v0"] = (["type", "path"], ["type", "path", "containerFiles", "args", "env", "bindings"]),
        ["container.v0"] = (["type", "image"],
            ["type", "image", "entrypoint", "args", "connectionString", "containerFiles", "env", "bindings", "bindMounts", "volumes"]),
        ["value.v0"] = (["connectionString"], ["type", "connectionString"]),
        ["parameter.v0"] = (["value", "inputs"], ["type", "value", "connectionString", "inputs"]),
        ["annotated.string"] = (["type", "value", "filter"], ["type", "value", "filter"]),
    };

    private JsonObject Resources => fixture.Manifest["resources"]!.AsObject();

    [Fact]
    public void Manifest_has_resources_and_nothing_else()
    {
        Assert.Empty(fixture.Manifest.Select(kv => kv.Key).Except(["$schema", "resources"]));
        Assert.NotEmpty(Resources);
    }

    [Fact]
    public void Every_resource_has_its_types_required_and_only_allowed_fields()
    {
        var errors = new List<string>();
        foreach (var (name, node) in Resources)
        {
            var r = node!.AsObject();
            var type = (string?)r["type"];
            if (type is null || !Types.TryGetValue(type, out var rule))
            {
                errors.Add($"{name}: type '{type}' is not one this platform writes");
                continue;
            }

            errors.AddRange(rule.Required.Where(f => r[f] is null).Select(f => $"{name} ({type}): missing required '{f}'"));
            errors.AddRange(r.Select(kv => kv.Key).Where(k => !rule.Allowed.Contains(k)).Select(k => $"{name} ({type}): field '{k}' is not allowed"));
            foreach (var f in new[] { "path", "image", "entrypoint", "command", "workingDirectory", "connectionString", "value" })
            {
                if (r[f] is { } v && v.GetValueKind() != System.Text.Json.JsonValueKind.String)
                {
                    errors.Add($"{name}: '{f}' must be a string");
                }
            }

            if (r["env"] is { } env)
            {
                errors.AddRange(env.AsObject().Where(kv => kv.Value?.GetValueKind() != System.Text.Json.JsonValueKind.String)
                    .Select(kv => $"{name}: env '{kv.Key}' must be a string"));
            }

            if (r["args"] is { } args)
            {
                errors.AddRange(args.AsArray().Where(a => a?.GetValueKind() != System.Text.Json.JsonValueKind.String).Select(_ => $"{name}: args must be strings"));
            }

            foreach (var (b, binding) in r["bindings"]?.AsObject() ?? [])
            {
                var o = binding!.AsObject();
                errors.AddRange(new[] { "scheme", "protocol", "transport" }.Where(f => o[f] is null).Select(f => $"{name}: binding '{b}' lacks '{f}'"));
                errors.AddRange(o.Select(kv => kv.Key).Except(["scheme", "protocol", "transport", "external", "targetPort", "port"])
                    .Select(k => $"{name}: binding '{b}' has unknown '{k}'"));
                if ((string?)o["protocol"] is not ("tcp" or "udp"))
                {
                    errors.Add($"{name}: binding '{b}' protocol must be tcp or udp");
                }

                if ((string?)o["transport"] is not ("http" or "http2" or "tcp"))
                {
                    errors.Add($"{name}: binding '{b}' transport must be http, http2 or tcp");
                }

                foreach (var n in new[] { "port", "targetPort" })
                {
                    if (o[n] is { } p && p.GetValueKind() != System.Text.Json.JsonValueKind.Number)
                    {
                        errors.Add($"{name}: binding '{b}' {n} must be a number");
                    }
                }

                if (o["external"] is { } e && e.GetValueKind() is not (System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False))
                {
                    errors.Add($"{name}: binding '{b}' external must be a boolean");
                }
            }

            foreach (var v in r["volumes"]?.AsArray() ?? [])
            {
                var o = v!.AsObject();
                if (o["name"] is null || o["target"] is null || o["readOnly"] is null || o.Count != 3)
                {
                    errors.Add($"{name}: volumes need exactly name, target, readOnly");
                }
            }

            if (type == "parameter.v0")
            {
                foreach (var (input, spec) in r["inputs"]!.AsObject())
                {
                    var o = spec!.AsObject();
                    if ((string?)o["type"] != "string")
                    {
                        errors.Add($"{name}: input '{input}' type must be \"string\"");
                    }

                    errors.AddRange(o.Select(kv => kv.Key).Except(["type", "secret", "default"]).Select(k => $"{name}: input '{input}' has unknown '{k}'"));
                    if (o["default"] is JsonObject d && !(d.Count == 1 && (d["generate"] is JsonObject { } g && g["minLength"] is not null || d["value"] is not null)))
                    {
                        errors.Add($"{name}: input '{input}' default must be {{generate: {{minLength}}}} or {{value}}");
                    }
                }
            }
        }

        Assert.True(errors.Count == 0, string.Join('\n', errors));
    }

    [Fact]
    public void Every_expression_points_at_an_existing_resource_and_property()
    {
        var errors = new List<string>();
        foreach (var (name, text) in Strings(fixture.Manifest["resources"]!, ""))
        {
            foreach (Match m in Braces().Matches(text))
            {
                var expression = Expression().Match(m.Value);
                if (!expression.Success)
                {
                    errors.Add($"{name}: '{m.Value}' is not a manifest expression");
                    continue;
                }

                var target = Resources[expression.Groups["r"].Value]?.AsObject();
                if (target is null)
                {
                    errors.Add($"{name}: '{m.Value}' refers to a resource that does not exist");
                }
                else if (expression.Groups["b"].Success && target["bindings"]?[expression.Groups["b"].Value] is null)
                {
                    errors.Add($"{name}: '{m.Value}' refers to a binding that does not exist");
                }
                else if (expression.Groups["p"].Value == "connectionString" && target["connectionString"] is null)
                {
                    errors.Add($"{name}: '{m.Value}' refers to a resource without a connection string");
                }
                else if (expression.Groups["p"].Value is "value" && (string?)target["type"] is not ("parameter.v0" or "annotated.string"))
                {
                    errors.Add($"{name}: '{m.Value}' reads a value of a resource that is neither a parameter nor an annotated string");
                }
                else if (expression.Groups["p"].Value is "inputs.value" && (string?)target["type"] != "parameter.v0")
                {
                    errors.Add($"{name}: '{m.Value}' reads an input of a resource that is not a parameter");
                }
            }
        }

        Assert.True(errors.Count == 0, string.Join('\n', errors));
    }

    [Fact]
    public void Infrastructure_is_written_as_Aspire_writes_it()
    {
        foreach (var server in new[] { "postgres", "redis", "objectstore" })
        {
            Assert.Equal("container.v0", (string?)Resources[server]!["type"]);
            Assert.NotNull(Resources[server]!["connectionString"]);
            Assert.Matches(@"^[a-z0-9./-]+:[A-Za-z0-9._-]+$", (string?)Resources[server]!["image"]);
            Assert.DoesNotContain(":latest", (string?)Resources[server]!["image"]);
            Assert.Single(Resources[server]!["volumes"]!.AsArray());
        }

        Assert.Equal("value.v0", (string?)Resources["platformdb"]!["type"]);

        // Aspire 13 writes the TLS branch of Redis's connection string as a conditional, evaluated into a value.v0.
        var conditional = Regex.Match((string)Resources["redis"]!["connectionString"]!, @"\{(?<c>cond-[a-z0-9-]+)\.connectionString\}");
        Assert.True(conditional.Success, "redis: connectionString has no conditional TLS part");
        Assert.Equal("value.v0", (string?)Resources[conditional.Groups["c"].Value]!["type"]);
        Assert.Equal("{postgres.connectionString};Database=platformdb", (string?)Resources["platformdb"]!["connectionString"]);
        Assert.Contains("Password={postgres-password.value}", (string?)Resources["postgres"]!["connectionString"]);
        Assert.Equal(5432, (int?)Resources["postgres"]!["bindings"]!["tcp"]!["targetPort"]);
        Assert.Equal(true, (bool?)Resources["inference-api"]!["bindings"]!["http"]!["external"]);
        Assert.Null(Resources["model-worker"]!["bindings"]!["http"]!["external"]);
        Assert.Equal("{platformdb.connectionString}", (string?)Resources["admin-api"]!["env"]!["ConnectionStrings__platformdb"]);
        Assert.Equal("{admin-api.bindings.http.url}", (string?)Resources["inference-api"]!["env"]!["services__admin-api__http__0"]);

        // Redis keeps usage records and the ledger: its pod writes the append-only file beside Aspire's snapshots and
        // bounds its memory below the pod's limit (RedisServerTests runs the rendered command).
        Assert.Equal(["-c", "redis-server --requirepass $REDIS_PASSWORD --save 60 1 --appendonly yes --appendfsync everysec --maxmemory $((REDIS_MEMORY_LIMIT_MIB * 4 / 5))mb --maxmemory-policy noeviction"],
            Resources["redis"]!["args"]!.AsArray().Select(a => (string?)a));

        // The AppHost's tuning for replicas sharing one machine's cores is run mode only: pods get their own cores, and
        // their drain on SIGTERM keeps its default.
        Assert.Null(Resources["model-worker"]!["env"]?["ModelWorker__IntraOpNumThreads"]);
        Assert.Null(Resources["inference-api"]!["env"]!["WorkerRouting__PackBelow"]);
        Assert.Null(Resources["inference-api"]!["env"]!["Shutdown__DrainDelay"]);
    }

    [Fact]
    public void Secrets_are_generated_parameters_never_values()
    {
        foreach (var p in new[] { "postgres-password", "redis-password", "objectstore-password", "admin-api-key", "internal-api-key" })
        {
            var r = Resources[p]!;
            Assert.Equal("parameter.v0", (string?)r["type"]);
            Assert.Equal($"{{{p}.inputs.value}}", (string?)r["value"]);
            Assert.Equal(true, (bool?)r["inputs"]!["value"]!["secret"]);
            Assert.True((int?)r["inputs"]!["value"]!["default"]!["generate"]!["minLength"] >= 22, $"{p}: generated secrets need 22+ characters");
        }

        Assert.Equal("{admin-api-key.value}", (string?)Resources["admin-api"]!["env"]!["Parameters__admin-api-key"]);
        // The worker hop's credential: the workers demand it, their two callers present it, nobody else holds it.
        foreach (var (name, r) in Resources.Where(kv => (string?)kv.Value!["type"] == "project.v0"))
        {
            var holds = (string?)r!["env"]?["Parameters__internal-api-key"];
            Assert.Equal(name is "model-worker" or "inference-api" or "context-enrichment" ? "{internal-api-key.value}" : null, holds);
        }
    }

    [Fact]
    public void Project_paths_are_relative_to_the_manifest_and_exist()
    {
        foreach (var (name, r) in Resources.Where(kv => (string?)kv.Value!["type"] == "project.v0"))
        {
            var path = (string)r!["path"]!;
            Assert.False(Path.IsPathRooted(path), $"{name}: path '{path}' must be relative");
            Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(fixture.ManifestPath)!, path)), $"{name}: '{path}' does not exist");
        }
    }

    private static IEnumerable<(string Where, string Text)> Strings(JsonNode node, string path) => node switch
    {
        JsonObject o => o.SelectMany(kv => kv.Value is null ? [] : Strings(kv.Value, $"{path}/{kv.Key}")),
        JsonArray a => a.SelectMany((v, i) => v is null ? [] : Strings(v, $"{path}/{i}")),
        JsonValue v when v.GetValueKind() == System.Text.Json.JsonValueKind.String => [(path, (string)v!)],
        _ => [],
    };

    [GeneratedRegex(@"\{[^{}]*\}")]
    private static partial Regex Braces();

    [GeneratedRegex(@"^\{(?<r>[a-z][a-z0-9-]*)\.(?<p>connectionString|value|inputs\.value|bindings\.(?<b>[a-z][a-z0-9-]*)\.(url|host|port|targetPort|scheme|tlsEnabled))\}$")]
    private static partial Regex Expression();
}
