using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Platform.Hosting;

namespace Platform.Hosting.Tests;

/// <summary>The AppHost's model in both modes: one graph, native servers in run mode, Aspire's containers when publishing.</summary>
public sealed class ModelTests
{
    private static readonly string[] Servers = ["postgres", "redis", "objectstore"];

    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task RunModeHoldsNoContainerSoItNeedsNoContainerEngine()
    {
        // One container resource makes DCP look for Docker/Podman: the testing builder would then wait 30 s and fail.
        await using var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Platform_AppHost>(Ct);
        Assert.Empty(builder.Resources.OfType<ContainerResource>().Select(r => r.Name));
        Assert.IsType<NativePostgresServerResource>(Resource(builder, "postgres"));
        Assert.IsType<NativePostgresDatabaseResource>(Resource(builder, "platformdb"));
        Assert.IsType<NativeRedisResource>(Resource(builder, "redis"));
        Assert.IsType<NativeObjectStoreResource>(Resource(builder, "objectstore"));
        Assert.All(Servers, name => Assert.IsAssignableFrom<IResourceWithConnectionString>(Resource(builder, name)));
    }

    [Fact]
    public async Task PublishModeUsesAspiresContainersUnderTheSameNames()
    {
        var output = Path.Combine(Path.GetTempPath(), $"platform-model-{Guid.NewGuid():N}.json");
        await using var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Platform_AppHost>(
            ["--publisher", "manifest", "--output-path", output], Ct);
        Assert.IsType<PostgresServerResource>(Resource(builder, "postgres"));
        Assert.IsType<PostgresDatabaseResource>(Resource(builder, "platformdb"));
        Assert.IsType<RedisResource>(Resource(builder, "redis"));
        Assert.IsType<MinioContainerResource>(Resource(builder, "objectstore"));
        Assert.Empty(builder.Resources.OfType<ExecutableResource>().Select(r => r.Name));
    }

    [Theory]
    [InlineData("run")]
    [InlineData("publish")]
    public async Task BothModesHaveTheSameResourcesReferencesAndSecrets(string mode)
    {
        string[] args = mode == "run" ? [] : ["--publisher", "manifest", "--output-path", Path.Combine(Path.GetTempPath(), $"platform-model-{Guid.NewGuid():N}.json")];
        await using var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Platform_AppHost>(args, Ct);
        string[] expected =
        [
            "admin-api", "admin-api-key", "context-enrichment", "inference-api", "internal-api-key", "model-worker", "objectstore",
            "objectstore-password", "objectstore-user", "platformdb", "postgres", "postgres-password", "redis", "redis-password",
        ];
        // Aspire adds helpers of its own: a hidden rebuilder per project in run mode, derived values in publish mode.
        Assert.Equal(expected, builder.Resources.Select(r => r.Name)
            .Where(n => !n.EndsWith("-rebuilder", StringComparison.Ordinal) && !n.EndsWith("-uri-encoded", StringComparison.Ordinal) && !n.StartsWith("cond-", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal));
        Assert.All(["admin-api-key", "internal-api-key", "postgres-password", "redis-password", "objectstore-password"],
            name => Assert.True(((ParameterResource)Resource(builder, name)).Secret, $"{name} is not a secret"));
        var worker = Resource(builder, "model-worker");
        Assert.True(worker.TryGetLastAnnotation<ReplicaAnnotation>(out var replicas));
        Assert.Equal(2, replicas.Replicas);
    }

    [Fact]
    public async Task EveryReplicaOfEveryRunningResourceIsWaitedFor()
    {
        await using var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Platform_AppHost>(Ct);
        var expected = ResourceHealth.ExpectedInstances(new DistributedApplicationModel(builder.Resources));
        Assert.Equal(2, expected["model-worker"]);
        Assert.Equal(1, expected["platformdb"]);
        Assert.All(["postgres", "redis", "objectstore", "admin-api", "context-enrichment", "inference-api"], name => Assert.Equal(1, expected[name]));
        Assert.DoesNotContain("admin-api-key", expected.Keys);
    }

    private static IResource Resource(IDistributedApplicationTestingBuilder builder, string name) =>
        builder.Resources.SingleOrDefault(r => r.Name == name) ?? throw new Xunit.Sdk.XunitException($"no resource '{name}' in {string.Join(", ", builder.Resources.Select(r => r.Name))}");
}
