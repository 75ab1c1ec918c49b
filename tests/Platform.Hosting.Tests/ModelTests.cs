using Platform.Hosting.ApplicationModel;
using Platform.Hosting.Orchestration;

namespace Platform.Hosting.Tests;

/// <summary>The model writes what Aspire writes: names, formats and expressions.</summary>
public sealed class ModelTests
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    private static (DistributedApplicationBuilder Builder, IResourceBuilder<ProjectResource> Api) Compose()
    {
        var builder = TestApps.CreateBuilder();
        var postgres = builder.AddPostgres("postgres");
        var db = postgres.AddDatabase("appdb", "app_database");
        var redis = builder.AddRedis("cache");
        var store = builder.AddMinio("objects");
        var worker = builder.AddProject("worker", TestApps.FakeProject("Worker")).WithReplicas(2);
        var api = builder.AddProject("api", TestApps.FakeProject("Api"))
            .WithReference(db).WithReference(redis).WithReference(store).WithReference(worker)
            .WithEnvironment("FEATURE_FLAG", "on");
        return (builder, api);
    }

    [Fact]
    public async Task ReferencesInjectAspireEnvironmentVariables()
    {
        var (builder, api) = Compose();
        PortAllocator.AllocateAll(builder.Resources, randomizePorts: true);
        var options = new OrchestratorOptions { OtlpEndpoint = "http://127.0.0.1:4318", OtlpHeaders = "x-otlp-api-key=k" };

        var (env, secrets) = await RunEnvironment.ResolveAsync(api.Resource, 0, builder.ExecutionContext, options, Ct);

        var pg = builder.Resources.OfType<PostgresServerResource>().Single();
        var pgPort = pg.PrimaryEndpoint.Port;
        var pgPassword = pg.PasswordParameter.Value;
        Assert.Equal($"Host=127.0.0.1;Port={pgPort};Username=postgres;Password={pgPassword};Database=app_database", env["ConnectionStrings__appdb"]);

        var redis = builder.Resources.OfType<RedisResource>().Single();
        Assert.Equal($"127.0.0.1:{redis.PrimaryEndpoint.Port},password={redis.PasswordParameter.Value}", env["ConnectionStrings__cache"]);

        var store = builder.Resources.OfType<MinioContainerResource>().Single();
        Assert.Equal($"Endpoint=http://127.0.0.1:{store.PrimaryEndpoint.Port};AccessKey=platform;SecretKey={store.PasswordParameter.Value}",
            env["ConnectionStrings__objects"]);

        var worker = builder.Resources.OfType<ProjectResource>().Single(p => p.Name == "worker");
        var workerHttp = worker.GetEndpoints().Single();
        Assert.Equal(workerHttp.GetAllocated(0)!.Url, env["services__worker__http__0"]);
        Assert.Equal(workerHttp.GetAllocated(1)!.Url, env["services__worker__http__1"]);
        Assert.NotEqual(env["services__worker__http__0"], env["services__worker__http__1"]);
        Assert.Equal(env["services__worker__http__0"], env["WORKER_HTTP"]);

        Assert.Equal("api", env["OTEL_SERVICE_NAME"]);
        Assert.Equal("service.instance.id=api-0", env["OTEL_RESOURCE_ATTRIBUTES"]);
        Assert.Equal("http://127.0.0.1:4318", env["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        Assert.Equal("http/protobuf", env["OTEL_EXPORTER_OTLP_PROTOCOL"]);
        Assert.Equal("x-otlp-api-key=k", env["OTEL_EXPORTER_OTLP_HEADERS"]);
        Assert.Equal("1000", env["OTEL_METRIC_EXPORT_INTERVAL"]);
        Assert.Equal(api.Resource.GetEndpoints().Single().GetAllocated(0)!.Url, env["ASPNETCORE_URLS"]);
        Assert.Equal("on", env["FEATURE_FLAG"]);

        Assert.Contains("ConnectionStrings__appdb", secrets);
        Assert.Contains("ConnectionStrings__cache", secrets);
        Assert.DoesNotContain("FEATURE_FLAG", secrets);
        Assert.DoesNotContain("services__worker__http__0", secrets);
    }

    [Fact]
    public async Task EachReplicaGetsItsOwnInstanceIdAndPort()
    {
        var (builder, _) = Compose();
        PortAllocator.AllocateAll(builder.Resources, randomizePorts: true);
        var worker = builder.Resources.OfType<ProjectResource>().Single(p => p.Name == "worker");
        var (env0, _) = await RunEnvironment.ResolveAsync(worker, 0, builder.ExecutionContext, new OrchestratorOptions(), Ct);
        var (env1, _) = await RunEnvironment.ResolveAsync(worker, 1, builder.ExecutionContext, new OrchestratorOptions(), Ct);
        Assert.Equal("service.instance.id=worker-0", env0["OTEL_RESOURCE_ATTRIBUTES"]);
        Assert.Equal("service.instance.id=worker-1", env1["OTEL_RESOURCE_ATTRIBUTES"]);
        Assert.NotEqual(env0["ASPNETCORE_URLS"], env1["ASPNETCORE_URLS"]);
        Assert.False(env0.ContainsKey("OTEL_EXPORTER_OTLP_ENDPOINT"), "no OTLP endpoint configured, none injected");
    }

    [Fact]
    public void ConnectionStringsRenderAsManifestExpressions()
    {
        var (builder, _) = Compose();
        var db = builder.Resources.OfType<PostgresDatabaseResource>().Single();
        var pg = db.Parent;
        Assert.Equal("{postgres.connectionString};Database=app_database", db.ConnectionStringExpression.ValueExpression);
        Assert.Equal("Host={postgres.bindings.tcp.host};Port={postgres.bindings.tcp.port};Username={postgres-username.value};Password={postgres-password.value}",
            pg.ConnectionStringExpression.ValueExpression);
        var redis = builder.Resources.OfType<RedisResource>().Single();
        Assert.Equal("{cache.bindings.tcp.host}:{cache.bindings.tcp.port},password={cache-password.value}", redis.ConnectionStringExpression.ValueExpression);
    }

    [Fact]
    public void SecretParametersAreGeneratedOnceAndPersisted()
    {
        var state = Path.Combine(Path.GetTempPath(), $"platform-params-{Guid.NewGuid():N}");
        var first = new GeneratedParameterStore(state).GetOrGenerate("db-password", 22);
        var again = new GeneratedParameterStore(state).GetOrGenerate("db-password", 22);
        Assert.Equal(first, again);
        Assert.Matches("^[A-Za-z0-9]{22}$", first);
        Assert.NotEqual(first, new GeneratedParameterStore(state).GetOrGenerate("other", 22));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(state, "parameters.json")));
        Directory.Delete(state, recursive: true);
    }

    [Fact]
    public void ParametersComeFromConfigurationFirst()
    {
        var builder = TestApps.CreateBuilder("--Parameters:api-key=from-config");
        var p = builder.AddParameter("api-key", secret: true);
        Assert.Equal("from-config", p.Resource.Value);
    }

    [Fact]
    public void DuplicateNamesAndInvalidNamesAreRejected()
    {
        var builder = TestApps.CreateBuilder();
        builder.AddRedis("cache");
        var dup = Assert.Throws<DistributedApplicationException>(() => builder.AddRedis("cache"));
        Assert.Contains("'cache'", dup.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => builder.AddRedis("Bad_Name"));
        Assert.Throws<ArgumentException>(() => builder.AddRedis("-leading"));
    }

    [Fact]
    public void AWaitCycleIsAnErrorAtBuildNamingTheResources()
    {
        var builder = TestApps.CreateBuilder();
        var a = builder.AddExecutable("a", "true", ".");
        var b = builder.AddExecutable("b", "true", ".").WaitFor(a);
        a.WaitFor(b);
        var ex = Assert.Throws<DistributedApplicationException>(() => builder.Build());
        Assert.Contains("cycle", ex.Message, StringComparison.Ordinal);
        Assert.Matches("'a'|'b'", ex.Message);
        Assert.Contains("a -> b -> a", ex.Message.Replace("b -> a -> b", "a -> b -> a", StringComparison.Ordinal), StringComparison.Ordinal);
    }

    [Fact]
    public void AReferenceToAResourceOutsideTheModelIsAnErrorAtBuild()
    {
        var builder = TestApps.CreateBuilder();
        var other = TestApps.CreateBuilder().AddRedis("elsewhere");
        builder.AddExecutable("app", "true", ".").WithReference(other);
        var ex = Assert.Throws<DistributedApplicationException>(() => builder.Build());
        Assert.Contains("'app'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("'elsewhere'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ExecutionContextFollowsThePublisherArgument()
    {
        Assert.True(TestApps.CreateBuilder().ExecutionContext.IsRunMode);
        var publish = TestApps.CreateBuilder("--publisher", "manifest", "--output-path", "/tmp/x.json").ExecutionContext;
        Assert.True(publish.IsPublishMode);
        Assert.Equal("manifest", publish.PublisherName);
    }
}
