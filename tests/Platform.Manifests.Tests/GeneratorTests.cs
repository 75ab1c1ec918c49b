using System.Text.Json.Nodes;
using Platform.Aspirate;
using Platform.Aspirate.Kubernetes;
using Platform.Aspirate.Manifest;

namespace Platform.Manifests.Tests;

/// <summary>tools/Platform.Aspirate on small manifests, one form of Aspire 13's manifest at a time.</summary>
public sealed class GeneratorTests
{
    private const string Password = """
        "db-password": {
          "type": "parameter.v0",
          "value": "{db-password.inputs.value}",
          "inputs": { "value": { "type": "string", "secret": true, "default": { "generate": { "minLength": 22, "special": false } } } }
        }
        """;

    private const string Server = """
        "db": {
          "type": "container.v0",
          "connectionString": "Host={db.bindings.tcp.host};Port={db.bindings.tcp.port};Username=postgres;Password={db-password.value}",
          "image": "docker.io/library/postgres:15.18",
          "volumes": [ { "name": "db-data", "target": "/var/lib/postgresql/data", "readOnly": false } ],
          "env": { "POSTGRES_PASSWORD": "{db-password.value}" },
          "bindings": { "tcp": { "scheme": "tcp", "protocol": "tcp", "transport": "tcp", "targetPort": 5432 } }
        }
        """;

    private static string Manifest(params string[] resources) => $$"""{ "resources": { {{string.Join(",\n", resources)}} } }""";

    private static string Project(string name, string env = "", string bindings = """ "http": { "scheme": "http", "protocol": "tcp", "transport": "http" } """) => $$"""
        "{{name}}": {
          "type": "project.v0",
          "path": "../src/{{name}}/{{name}}.csproj",
          "env": { "HTTP_PORTS": "{{{name}}.bindings.http.targetPort}"{{(env.Length > 0 ? "," + env : "")}} },
          "bindings": { {{bindings}} }
        }
        """;

    private static ManifestException Refused(string manifest, GenerateOptions? options = null) =>
        Assert.Throws<ManifestException>(() => GeneratedOutput.From(manifest, options));

    [Fact]
    public void Conditional_expression_backed_by_a_value_resource_resolves_to_its_evaluated_branch()
    {
        // Aspire 13 writes WithTls-dependent parts as {cond-...connectionString}, a value.v0 holding the evaluated branch.
        var cache = (string branch) => Manifest(
            """
            "cache-password": { "type": "parameter.v0", "value": "{cache-password.inputs.value}", "inputs": { "value": { "type": "string", "secret": true } } }
            """,
            """
            "cache": {
              "type": "container.v0",
              "connectionString": "{cache.bindings.tcp.host}:{cache.bindings.tcp.port},password={cache-password.value}{cond-cache-tls-1a2b.connectionString}",
              "image": "docker.io/library/redis:7.0.15",
              "bindings": { "tcp": { "scheme": "redis", "protocol": "tcp", "transport": "tcp", "targetPort": 6379 } }
            }
            """,
            $$"""
            "cond-cache-tls-1a2b": { "type": "value.v0", "connectionString": "{{branch}}" }
            """,
            Project("api", """ "ConnectionStrings__cache": "{cache.connectionString}" """));

        Assert.Equal("cache:6379,password=$(CACHE_PASSWORD)", (string?)GeneratedOutput.From(cache("")).Env("api", "ConnectionStrings__cache")?["value"]);
        Assert.Equal("cache:6379,password=$(CACHE_PASSWORD),ssl=true", (string?)GeneratedOutput.From(cache(",ssl=true")).Env("api", "ConnectionStrings__cache")?["value"]);

        // The conditional is configuration, not a workload: nothing is generated for it.
        Assert.DoesNotContain(GeneratedOutput.From(cache("")).Files.Keys, k => k.StartsWith("cond-", StringComparison.Ordinal));
    }

    [Fact]
    public void Value_resource_chains_resolve_through_every_link_and_keep_the_network_edge()
    {
        var output = GeneratedOutput.From(Manifest(Password, Server,
            """ "appdb": { "type": "value.v0", "connectionString": "{db.connectionString};Database=appdb" } """,
            """ "appdb-readonly": { "type": "value.v0", "connectionString": "{appdb.connectionString};Options=-c default_transaction_read_only=on" } """,
            Project("api", """ "ConnectionStrings__appdb": "{appdb-readonly.connectionString}" """)));

        Assert.Equal("Host=db;Port=5432;Username=postgres;Password=$(DB_PASSWORD);Database=appdb;Options=-c default_transaction_read_only=on",
            (string?)output.Env("api", "ConnectionStrings__appdb")?["value"]);

        // The helper variable the expansion reads is a secretKeyRef declared first; the password is nowhere else.
        var env = output.Container("api")["env"]!.AsArray();
        Assert.Equal("DB_PASSWORD", (string?)env[0]!["name"]);
        Assert.Equal("db-password", (string?)env[0]!["valueFrom"]!["secretKeyRef"]!["name"]);
        Assert.True(output.Allows("api", "db", 5432), "api -> db:5432 must be allowed");
        Assert.Equal("db-password", (string?)output.Workload("api")["spec"]!["template"]!["metadata"]!["annotations"]!["secret.reloader.stakater.com/reload"]);
    }

    [Fact]
    public void A_circular_value_chain_is_refused_naming_it()
    {
        var e = Refused(Manifest(
            """ "a": { "type": "value.v0", "connectionString": "x{b.connectionString}" } """,
            """ "b": { "type": "value.v0", "connectionString": "y{a.connectionString}" } """,
            Project("api", """ "ConnectionStrings__a": "{a.connectionString}" """)));
        Assert.Contains("refers to itself", e.Message, StringComparison.Ordinal);
        Assert.Contains("a.connectionString", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Annotated_uri_string_of_a_secret_becomes_an_ExternalSecret_that_encodes_it()
    {
        var output = GeneratedOutput.From(Manifest(Password, Server,
            """ "db-password-uri-encoded": { "type": "annotated.string", "value": "{db-password.value}", "filter": "uri" } """,
            Project("api", """ "DB_URI": "postgres://postgres:{db-password-uri-encoded.value}@{db.bindings.tcp.host}:{db.bindings.tcp.port}/app" """)));

        Assert.Equal("postgres://postgres:$(DB_PASSWORD_URI_ENCODED)@db:5432/app", (string?)output.Env("api", "DB_URI")?["value"]);
        Assert.Equal("db-password-uri-encoded", (string?)output.Env("api", "DB_PASSWORD_URI_ENCODED")?["valueFrom"]?["secretKeyRef"]?["name"]);
        var es = output.Get("ExternalSecret", "db-password-uri-encoded")["spec"]!;
        Assert.Equal("platform/db-password", (string?)es["data"]![0]!["remoteRef"]!["key"]);
        Assert.Equal("{{ .value | urlquery }}", (string?)es["target"]!["template"]!["data"]!["value"]);
        Assert.Equal("v2", (string?)es["target"]!["template"]!["engineVersion"]);
    }

    [Fact]
    public void Annotated_uri_string_of_a_plain_parameter_is_encoded_in_place()
    {
        var output = GeneratedOutput.From(Manifest(
            """ "bucket": { "type": "parameter.v0", "value": "{bucket.inputs.value}", "inputs": { "value": { "type": "string", "default": { "value": "a b/c" } } } } """,
            """ "bucket-uri-encoded": { "type": "annotated.string", "value": "{bucket.value}", "filter": "uri" } """,
            Project("api", """ "BUCKET_PATH": "/b/{bucket-uri-encoded.value}" """)));

        Assert.Equal("/b/a%20b%2Fc", output.ConfigMap("api")["BUCKET_PATH"]);
        Assert.DoesNotContain(output.Files.Keys, k => k.StartsWith("external-secrets/", StringComparison.Ordinal) && !k.EndsWith("kustomization.yaml", StringComparison.Ordinal));
    }

    [Fact]
    public void Unknown_filter_is_refused_naming_the_resource()
    {
        var e = Refused(Manifest(Password,
            """ "p-b64": { "type": "annotated.string", "value": "{db-password.value}", "filter": "base64" } """,
            Project("api", """ "X": "{p-b64.value}" """)));
        Assert.Contains("resources.p-b64.filter", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Http2_binding_becomes_an_h2c_port_named_after_it_and_its_clients_reach_it()
    {
        var worker = Project("worker", """ "GRPC_PORT": "{worker.bindings.grpc.targetPort}" """,
            """
            "http": { "scheme": "http", "protocol": "tcp", "transport": "http" },
            "grpc": { "scheme": "http", "protocol": "tcp", "transport": "http2", "targetPort": 8081 }
            """);
        var output = GeneratedOutput.From(Manifest(worker,
            Project("api", """ "services__worker__grpc__0": "{worker.bindings.grpc.url}", "services__worker__http__0": "{worker.bindings.http.url}" """)));

        var grpc = output.Get("Service", "worker")["spec"]!["ports"]!.AsArray().Single(p => (string?)p!["name"] == "grpc")!;
        Assert.Equal("kubernetes.io/h2c", (string?)grpc["appProtocol"]);
        Assert.Equal(8081, (int?)grpc["port"]);
        Assert.Equal("grpc", (string?)grpc["targetPort"]);
        var http = output.Get("Service", "worker")["spec"]!["ports"]!.AsArray().Single(p => (string?)p!["name"] == "http")!;
        Assert.Null(http["appProtocol"]);
        Assert.Equal(8081, (int?)output.Container("worker")["ports"]!.AsArray().Single(p => (string?)p!["name"] == "grpc")!["containerPort"]);
        Assert.Equal("8081", output.ConfigMap("worker")["GRPC_PORT"]);

        // HTTP/1.1 probes go to the http port, never the h2c one.
        Assert.Equal("http", (string?)output.Container("worker")["readinessProbe"]!["httpGet"]!["port"]);
        Assert.Equal("http://worker:8081", output.ConfigMap("api")["services__worker__grpc__0"]);
        Assert.Equal("http://worker:8080", output.ConfigMap("api")["services__worker__http__0"]);
        Assert.True(output.Allows("api", "worker", 8081), "api -> worker:8081 (grpc) must be allowed");
        Assert.True(output.Allows("api", "worker", 8080), "api -> worker:8080 (http) must be allowed");
    }

    [Fact]
    public void Second_http_binding_without_a_target_port_is_refused_naming_it()
    {
        var e = Refused(Manifest(Project("worker", bindings: """
            "http": { "scheme": "http", "protocol": "tcp", "transport": "http" },
            "grpc": { "scheme": "http", "protocol": "tcp", "transport": "http2" }
            """)));
        Assert.Contains("resources.worker.bindings.", e.Message, StringComparison.Ordinal);
        Assert.Contains("targetPort", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Binding_properties_resolve_to_the_in_cluster_service()
    {
        var output = GeneratedOutput.From(Manifest(
            Project("web", bindings: """
                "http": { "scheme": "http", "protocol": "tcp", "transport": "http", "port": 80, "targetPort": 8080 },
                "https": { "scheme": "https", "protocol": "tcp", "transport": "http", "targetPort": 8443 }
                """),
            Project("api", """
                "H": "{web.bindings.http.host}", "P": "{web.bindings.http.port}", "T": "{web.bindings.http.targetPort}",
                "U": "{web.bindings.http.url}", "S": "{web.bindings.https.scheme}", "TLS": "{web.bindings.https.tlsEnabled}",
                "PLAIN": "{web.bindings.http.tlsEnabled}", "SECURE": "{web.bindings.https.url}"
                """)));
        var c = output.ConfigMap("api");
        Assert.Equal(("web", "80", "8080", "http://web:80"), (c["H"], c["P"], c["T"], c["U"]));
        Assert.Equal(("https", "True", "False", "https://web:8443"), (c["S"], c["TLS"], c["PLAIN"], c["SECURE"]));
        Assert.Equal(80, (int?)output.Get("Service", "web")["spec"]!["ports"]![0]!["port"]);
        Assert.Equal(8080, (int?)output.Container("web")["ports"]![0]!["containerPort"]);
        Assert.True(output.Allows("api", "web", 8080), "policies allow the pod port, not the Service port");
    }

    [Fact]
    public void Secret_parameters_with_or_without_generate_become_ExternalSecrets_never_values()
    {
        var output = GeneratedOutput.From(Manifest(Password,
            """ "api-key": { "type": "parameter.v0", "value": "{api-key.inputs.value}", "inputs": { "value": { "type": "string", "secret": true } } } """,
            Project("api", """ "Db__Password": "{db-password.value}", "Parameters__api-key": "{api-key.value}" """)));

        foreach (var (variable, secret) in new[] { ("Db__Password", "db-password"), ("Parameters__api-key", "api-key") })
        {
            Assert.Equal(secret, (string?)output.Env("api", variable)?["valueFrom"]?["secretKeyRef"]?["name"]);
            Assert.False(output.ConfigMap("api").ContainsKey(variable), $"{variable} must not be in the ConfigMap");
            var es = output.Get("ExternalSecret", secret)["spec"]!;
            Assert.Equal($"platform/{secret}", (string?)es["data"]![0]!["remoteRef"]!["key"]);
            Assert.Equal("platform-secrets", (string?)es["secretStoreRef"]!["name"]);
            Assert.Equal(secret, (string?)es["target"]!["name"]);
        }

        Assert.Equal(["db-password.yaml", "api-key.yaml"],
            output.Files["external-secrets/kustomization.yaml"][0]["resources"]!.AsArray().Select(r => (string?)r));
    }

    [Fact]
    public void Plain_parameter_with_a_default_is_written_as_its_value()
    {
        var output = GeneratedOutput.From(Manifest(
            """ "user": { "type": "parameter.v0", "value": "{user.inputs.value}", "inputs": { "value": { "type": "string", "default": { "value": "platform" } } } } """,
            Project("api", """ "USER": "{user.value}", "GREETING": "hello {user.value}" """)));
        Assert.Equal("platform", output.ConfigMap("api")["USER"]);
        Assert.Equal("hello platform", output.ConfigMap("api")["GREETING"]);
    }

    [Fact]
    public void Plain_parameter_without_a_default_needs_a_value_on_the_command_line()
    {
        var manifest = Manifest(
            """ "region": { "type": "parameter.v0", "value": "{region.inputs.value}", "inputs": { "value": { "type": "string" } } } """,
            Project("api", """ "REGION": "{region.value}" """));
        Assert.Contains("--parameter region=VALUE", Refused(manifest).Message, StringComparison.Ordinal);

        var output = GeneratedOutput.From(manifest, new GenerateOptions { Parameters = new Dictionary<string, string> { ["region"] = "eu-west" } });
        Assert.Equal("eu-west", output.ConfigMap("api")["REGION"]);
        Assert.Contains("--parameter nope", Refused(manifest, new GenerateOptions { Parameters = new Dictionary<string, string> { ["nope"] = "x" } }).Message,
            StringComparison.Ordinal);
    }

    [Fact]
    public void Plain_parameter_with_generate_is_kept_secret_and_a_secret_cannot_be_given_on_the_command_line()
    {
        // A generated value would differ on every run and be readable in the repository: it comes from the store instead.
        var manifest = Manifest(
            """ "salt": { "type": "parameter.v0", "value": "{salt.inputs.value}", "inputs": { "value": { "type": "string", "default": { "generate": { "minLength": 16 } } } } } """,
            Password,
            Project("api", """ "SALT": "{salt.value}", "DB": "{db-password.value}" """));
        var output = GeneratedOutput.From(manifest);
        Assert.Equal("salt", (string?)output.Env("api", "SALT")?["valueFrom"]?["secretKeyRef"]?["name"]);
        output.Get("ExternalSecret", "salt");

        var e = Refused(manifest, new GenerateOptions { Parameters = new Dictionary<string, string> { ["db-password"] = "hunter2hunter2" } });
        Assert.Contains("--parameter db-password", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Volumes_become_a_StatefulSet_with_claims_of_the_configured_class_and_server_conventions()
    {
        var output = GeneratedOutput.From(Manifest(Password, Server), new GenerateOptions { StorageClass = "fast", StorageSize = "50Gi" });
        var set = output.Get("StatefulSet", "db");
        var claim = set["spec"]!["volumeClaimTemplates"]![0]!;
        Assert.Equal("db-data", (string?)claim["metadata"]!["name"]);
        Assert.Equal("fast", (string?)claim["spec"]!["storageClassName"]);
        Assert.Equal("50Gi", (string?)claim["spec"]!["resources"]!["requests"]!["storage"]);
        Assert.Equal("db-headless", (string?)set["spec"]!["serviceName"]);
        output.Get("Service", "db-headless");

        // The official postgres image under a read-only root: data one level below the mount, a writable socket dir.
        Assert.Equal("/var/lib/postgresql/data/pgdata", output.ConfigMap("db")["PGDATA"]);
        Assert.Contains(output.Container("db")["volumeMounts"]!.AsArray(), m => (string?)m!["mountPath"] == "/var/run/postgresql");
        Assert.Equal("pg_isready", (string?)output.Container("db")["readinessProbe"]!["exec"]!["command"]![0]);
        Assert.Equal("db-password", (string?)output.Env("db", "POSTGRES_PASSWORD")?["valueFrom"]?["secretKeyRef"]?["name"]);

        // Without a storage class the claim takes the cluster's default.
        Assert.Null(GeneratedOutput.From(Manifest(Password, Server)).Get("StatefulSet", "db")["spec"]!["volumeClaimTemplates"]![0]!["spec"]!["storageClassName"]);
    }

    [Fact]
    public void Volume_names_that_are_no_claim_names_are_named_after_the_mount()
    {
        var output = GeneratedOutput.From(Manifest(
            """
            "cache": {
              "type": "container.v0", "image": "docker.io/library/redis:7.0.15", "entrypoint": "/bin/sh", "args": ["-c", "redis-server --save 60 1"],
              "volumes": [ { "name": "app.apphost-7855b85e05-cache-data", "target": "/data", "readOnly": false } ],
              "bindings": { "tcp": { "scheme": "redis", "protocol": "tcp", "transport": "tcp", "targetPort": 6379 } }
            }
            """));
        Assert.Equal("cache-data", (string?)output.Get("StatefulSet", "cache")["spec"]!["volumeClaimTemplates"]![0]!["metadata"]!["name"]);
        Assert.Equal("/bin/sh", (string?)output.Container("cache")["command"]![0]);
        Assert.Equal(["-c", "redis-server --save 60 1"], output.Container("cache")["args"]!.AsArray().Select(a => (string?)a));
    }

    [Theory]
    [InlineData("""{ "resources": { "x": { "type": "executable.v0", "command": "x", "workingDirectory": "." } } }""", "resources.x")]
    [InlineData("""{ "resources": { "x": { "type": "azure.bicep.v0", "path": "x.bicep" } } }""", "resources.x.type")]
    [InlineData("""{ "resources": { "x": { "type": "container.v0", "image": "i:1", "bindings": { "tcp": { "scheme": "tcp", "protocol": "tcp", "transport": "tcp", "targetPort": "80" } } } } }""", "resources.x.bindings.tcp.targetPort")]
    [InlineData("""{ "resources": { "x": { "type": "container.v0", "image": "i:1", "env": { "A": "{nope.connectionString}" } } } }""", "resources.x.env.A")]
    [InlineData("""{ "resources": { "x": { "type": "container.v0", "image": "i:1", "env": { "A": "{x.bindings.web.url}" } } } }""", "no binding 'web'")]
    [InlineData("""{ "resources": { "x": { "type": "container.v0", "image": "i:1", "bindMounts": [ { "source": "/etc", "target": "/etc", "readOnly": true } ] } } }""", "resources.x.bindMounts")]
    [InlineData("""{ "resources": { "Bad_Name": { "type": "container.v0", "image": "i:1" } } }""", "resources.Bad_Name")]
    [InlineData("""{ "nothing": {} }""", "'resources'")]
    public void Manifests_that_cannot_be_deployed_are_refused_naming_the_field(string manifest, string named)
    {
        Assert.Contains(named, Refused(manifest).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Literal_dollar_parentheses_are_escaped_where_Kubernetes_expands_them()
    {
        var output = GeneratedOutput.From(Manifest(Password,
            """ "tool": { "type": "container.v0", "image": "i:1", "args": ["echo $(date)", "{db-password.value}"], "env": { "PLAIN": "$(kept)", "MIXED": "$(x):{db-password.value}" } } """));
        Assert.Equal(["echo $$(date)", "$(DB_PASSWORD)"], output.Container("tool")["args"]!.AsArray().Select(a => (string?)a));
        Assert.Equal("$(kept)", output.ConfigMap("tool")["PLAIN"]);
        Assert.Equal("$$(x):$(DB_PASSWORD)", (string?)output.Env("tool", "MIXED")?["value"]);
    }

    [Fact]
    public void Images_and_options_follow_the_command_line_and_latest_is_refused()
    {
        var options = new GenerateOptions
        {
            ContainerRegistry = "ghcr.io", ContainerRepositoryPrefix = "acme", ContainerImageTag = "2.3.4", Namespace = "acme",
            ImagePullPolicy = "Always", RunAsUser = 20000,
        };
        var output = GeneratedOutput.From(Manifest(Project("api")), options);
        Assert.Equal("ghcr.io/acme/api:2.3.4", (string?)output.Container("api")["image"]);
        Assert.Equal("Always", (string?)output.Container("api")["imagePullPolicy"]);
        Assert.Equal("acme", (string?)output.Files["kustomization.yaml"][0]["namespace"]);
        Assert.Equal(20000, (long?)output.Workload("api")["spec"]!["template"]!["spec"]!["securityContext"]!["runAsUser"]);

        Assert.Contains("--container-image-tag", Refused(Manifest(Project("api")), new GenerateOptions { ContainerImageTag = "latest" }).Message, StringComparison.Ordinal);
        Assert.Contains("--run-as-user", Refused(Manifest(Project("api")), new GenerateOptions { RunAsUser = 1000 }).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Generation_is_byte_for_byte_repeatable()
    {
        var manifest = AspireManifest.Parse(Manifest(Password, Server, Project("api", """ "ConnectionStrings__db": "{db.connectionString}" """)));
        var first = OutputWriter.Render(KubernetesGenerator.Generate(manifest, new GenerateOptions()));
        var second = OutputWriter.Render(KubernetesGenerator.Generate(AspireManifest.Parse(Manifest(Password, Server,
            Project("api", """ "ConnectionStrings__db": "{db.connectionString}" """))), new GenerateOptions()));
        Assert.Equal(first, second);
    }

    [Fact]
    public async Task Command_line_writes_the_base_removes_what_it_no_longer_generates_and_reports_errors()
    {
        var dir = Directory.CreateTempSubdirectory("platform-aspirate-cli-").FullName;
        try
        {
            var manifestPath = Path.Combine(dir, "aspire-manifest.json");
            var outputPath = Path.Combine(dir, "out");
            await File.WriteAllTextAsync(manifestPath, Manifest(Project("api"), Project("old")), TestContext.Current.CancellationToken);
            Assert.Equal(0, await Run("generate", "-m", manifestPath, "-o", outputPath, "--skip-build", "--non-interactive"));
            Assert.True(File.Exists(Path.Combine(outputPath, "old", "deployment.yaml")));
            await File.WriteAllTextAsync(Path.Combine(outputPath, "hand-written.yaml"), "kind: Keep\n", TestContext.Current.CancellationToken);

            await File.WriteAllTextAsync(manifestPath, Manifest(Project("api")), TestContext.Current.CancellationToken);
            Assert.Equal(0, await Run("generate", "--aspire-manifest", manifestPath, "--output-path", outputPath, "--container-image-tag", "9.9.9"));
            Assert.False(Directory.Exists(Path.Combine(outputPath, "old")), "a workload removed from the manifest must leave the output");
            Assert.True(File.Exists(Path.Combine(outputPath, "hand-written.yaml")), "files the tool did not write stay");
            Assert.Contains("api:9.9.9", await File.ReadAllTextAsync(Path.Combine(outputPath, "api", "deployment.yaml"), TestContext.Current.CancellationToken), StringComparison.Ordinal);

            using var error = new StringWriter();
            Assert.Equal(1, await AspirateCli.InvokeAsync(["generate", "--manifest", manifestPath, "--parameter", "nope"], TextWriter.Null, error,
                TestContext.Current.CancellationToken));
            Assert.Contains("--parameter 'nope'", error.ToString(), StringComparison.Ordinal);
            Assert.NotEqual(0, await Run("generate"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }

        static Task<int> Run(params string[] args) => AspirateCli.InvokeAsync(args, TextWriter.Null, TextWriter.Null, TestContext.Current.CancellationToken);
    }
}
