using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Platform.Data;
using Platform.Data.Migrations;
using Platform.TestSupport;

namespace Platform.Libs.Tests;

public sealed class MigrationTests(ServersFixture servers)
{
    private const string Prefix = "Platform.Libs.Tests.Migrations.";

    private static MigrationRunner Runner(NpgsqlDataSource dataSource) =>
        new(dataSource, TimeProvider.System, NullLogger<MigrationRunner>.Instance);

    private static async Task<T?> ScalarAsync<T>(NpgsqlDataSource dataSource, string sql, CancellationToken ct)
    {
        await using var command = dataSource.CreateCommand(sql);
        var value = await command.ExecuteScalarAsync(ct);
        return value is DBNull or null ? default : (T)value;
    }

    [Fact]
    public void EmbeddedSource_ReadsMigrationsInVersionOrder()
    {
        var migrations = new EmbeddedResourceMigrationSource(typeof(MigrationTests).Assembly, Prefix).GetMigrations();

        Assert.Equal([(1, "create_widgets"), (2, "seed_widgets")], migrations.Select(m => (m.Version, m.Name)));
        Assert.All(migrations, m => Assert.Matches("^[0-9a-f]{64}$", m.Checksum));
    }

    [Fact]
    public async Task ConcurrentRunners_ApplyEachMigrationExactlyOnce()
    {
        var ct = TestContext.Current.CancellationToken;
        var connectionString = await servers.CreateDatabaseAsync(ct);
        var source = new EmbeddedResourceMigrationSource(typeof(MigrationTests).Assembly, Prefix);
        var dataSources = Enumerable.Range(0, 3).Select(_ => NpgsqlDataSource.Create(connectionString)).ToArray();
        try
        {
            // Three "replicas" starting at once; 0001 is not idempotent, so a double apply would fail the run.
            var results = await Task.WhenAll(dataSources.Select(ds => Runner(ds).MigrateAsync(source, ct)));

            Assert.Equal([1, 2], results.SelectMany(r => r.Applied).Order());
            Assert.Single(results, r => r.Applied.Count == 2);
            Assert.All(results, r => Assert.Equal(2, r.CurrentVersion));
            Assert.Equal(2L, await ScalarAsync<long>(dataSources[0], "SELECT count(*) FROM schema_migrations", ct));
            Assert.Equal(1L, await ScalarAsync<long>(dataSources[0], "SELECT count(*) FROM widgets", ct));

            var again = await Runner(dataSources[0]).MigrateAsync(source, ct);
            Assert.Empty(again.Applied);
        }
        finally
        {
            foreach (var ds in dataSources)
            {
                await ds.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task ChangedChecksumOfAppliedMigration_IsAnError_AndAppliesNothing()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var dataSource = NpgsqlDataSource.Create(await servers.CreateDatabaseAsync(ct));
        var runner = Runner(dataSource);
        await runner.MigrateAsync(new InMemoryMigrationSource(new Migration(1, "a", "CREATE TABLE a (id int);")), ct);

        var ex = await Assert.ThrowsAsync<MigrationChecksumMismatchException>(() => runner.MigrateAsync(
            new InMemoryMigrationSource(
                new Migration(1, "a", "CREATE TABLE a (id bigint);"),
                new Migration(2, "b", "CREATE TABLE b (id int);")),
            ct));

        Assert.Equal(1, ex.Version);
        Assert.Contains("0001_a", ex.Message, StringComparison.Ordinal);
        Assert.Null(await ScalarAsync<string>(dataSource, "SELECT to_regclass('b')::text", ct));
    }

    [Fact]
    public async Task LineEndingChange_IsNotAChecksumChange()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var dataSource = NpgsqlDataSource.Create(await servers.CreateDatabaseAsync(ct));
        var runner = Runner(dataSource);
        await runner.MigrateAsync(new InMemoryMigrationSource(new Migration(1, "a", "CREATE TABLE a (id int);\nSELECT 1;\n")), ct);

        var result = await runner.MigrateAsync(new InMemoryMigrationSource(new Migration(1, "a", "CREATE TABLE a (id int);\r\nSELECT 1;\r\n")), ct);

        Assert.Empty(result.Applied);
    }

    [Fact]
    public async Task FailingMigration_RollsBackTheWholeRun()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var dataSource = NpgsqlDataSource.Create(await servers.CreateDatabaseAsync(ct));

        var ex = await Assert.ThrowsAsync<MigrationException>(() => Runner(dataSource).MigrateAsync(
            new InMemoryMigrationSource(
                new Migration(1, "good", "CREATE TABLE good (id int);"),
                new Migration(2, "bad", "CREATE TABLE bad (id int REFERENCES nowhere(id));")),
            ct));

        Assert.Contains("0002_bad", ex.Message, StringComparison.Ordinal);
        Assert.Null(await ScalarAsync<string>(dataSource, "SELECT to_regclass('good')::text", ct));
        Assert.Null(await ScalarAsync<string>(dataSource, "SELECT to_regclass('schema_migrations')::text", ct));
    }

    [Fact]
    public async Task HostedMigrations_MakeTheServiceReady_AndPostgresCheckIsHealthy()
    {
        var ct = TestContext.Current.CancellationToken;
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, EnvironmentName = "Testing" });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:platformdb"] = await servers.CreateDatabaseAsync(ct),
        });
        builder.Services.AddLogging();
        builder.AddPlatformDataSource();
        builder.AddPlatformMigrations(typeof(MigrationTests).Assembly, Prefix);
        using var host = builder.Build();
        var health = host.Services.GetRequiredService<HealthCheckService>();

        var before = await health.CheckHealthAsync(ct);
        Assert.Equal(HealthStatus.Unhealthy, before.Entries["migrations"].Status);

        await host.StartAsync(ct);
        var report = await Waits.UntilAsync(() => health.CheckHealthAsync(ct), r => r.Status == HealthStatus.Healthy,
            TimeSpan.FromSeconds(15), "the host healthy after its migrations", ct);

        Assert.Equal(HealthStatus.Healthy, report.Entries[DataServiceCollectionExtensions.HealthCheckName].Status);
        Assert.Equal(HealthStatus.Healthy, report.Entries["migrations"].Status);
        Assert.Contains("version 2", report.Entries["migrations"].Description, StringComparison.Ordinal);
        await host.StopAsync(ct);
    }

    [Fact]
    public async Task PostgresCheck_IsUnhealthy_WhenServerIsDown()
    {
        var ct = TestContext.Current.CancellationToken;
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, EnvironmentName = "Testing" });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:platformdb"] = "Host=127.0.0.1;Port=1;Username=postgres;Password=x;Database=platformdb;Timeout=2",
        });
        builder.Services.AddLogging();
        builder.AddPlatformDataSource();
        using var host = builder.Build();

        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(ct);

        Assert.Equal(HealthStatus.Unhealthy, report.Entries[DataServiceCollectionExtensions.HealthCheckName].Status);
        Assert.NotNull(report.Entries[DataServiceCollectionExtensions.HealthCheckName].Exception);
    }

    [Fact]
    public void MissingConnectionString_FailsWithClearMessage()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, EnvironmentName = "Testing" });

        builder.AddPlatformDataSource();
        using var host = builder.Build();

        var ex = Assert.Throws<InvalidOperationException>(() => host.Services.GetRequiredService<Npgsql.NpgsqlDataSource>());

        Assert.Contains("ConnectionStrings:platformdb", ex.Message, StringComparison.Ordinal);
    }
}
