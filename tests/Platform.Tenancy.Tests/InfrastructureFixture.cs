using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Platform.Hosting;
using Platform.Hosting.Testing;
using Platform.Redis;

[assembly: AssemblyFixture(typeof(Platform.Tenancy.Tests.InfrastructureFixture))]

namespace Platform.Tenancy.Tests;

/// <summary>Real Redis and Postgres for this assembly, composed and run by Platform's own hosting layer.</summary>
public sealed class InfrastructureFixture : IAsyncLifetime
{
    public DistributedApplication App { get; private set; } = null!;

    public string RedisConnectionString { get; private set; } = string.Empty;

    public NpgsqlDataSource Db { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        var builder = DistributedApplication.CreateBuilder(new DistributedApplicationOptions
        {
            AppHostAssembly = typeof(InfrastructureFixture).Assembly,
            DisableDashboard = true,
            RandomizePorts = true,
            DisablePersistence = true,
            StateDirectory = Path.Combine(Path.GetTempPath(), $"platform-tenancy-tests-{Guid.NewGuid():N}"),
            PrintBanner = false,
        });
        builder.AddRedis("redis");
        builder.AddPostgres("postgres").AddDatabase("db");
        App = builder.Build();
        await App.StartAsync();
        await App.WaitForAllHealthyAsync(TimeSpan.FromSeconds(60));
        RedisConnectionString = (await App.GetConnectionStringAsync("redis"))!;
        Db = NpgsqlDataSource.Create((await App.GetConnectionStringAsync("db"))!);
        // AdminApi's own migrations, in order (the same files, embedded).
        foreach (var name in new[] { "migrations.0200.sql", "migrations.0201.sql" })
        {
            using var sql = new StreamReader(typeof(InfrastructureFixture).Assembly.GetManifestResourceStream(name)!);
            await using var migrate = Db.CreateCommand(await sql.ReadToEndAsync());
            await migrate.ExecuteNonQueryAsync();
        }
    }

    public RedisConnection NewRedisConnection() => new(RedisConnectionString, NullLogger<RedisConnection>.Instance);

    public async ValueTask DisposeAsync()
    {
        await Db.DisposeAsync();
        await App.DisposeAsync();
    }
}
