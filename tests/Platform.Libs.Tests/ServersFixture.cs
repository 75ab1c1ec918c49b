using Aspire.Hosting;
using Npgsql;
using Platform.Hosting;
using Platform.TestSupport;

[assembly: AssemblyFixture(typeof(Platform.Libs.Tests.ServersFixture))]

namespace Platform.Libs.Tests;

/// <summary>
/// Real PostgreSQL 15, redis-server and the object store for this assembly: Platform's native resources, run by Aspire with
/// throw-away data (the same servers the AppHost runs).
/// </summary>
public sealed class ServersFixture : IAsyncLifetime
{
    public const string RedisPassword = "platform-redis-pw";

    private PlatformApp? _app;

    public string PostgresConnectionString { get; private set; } = "";

    public string RedisConnectionString { get; private set; } = "";

    public string ObjectStoreConnectionString { get; private set; } = "";

    public async ValueTask InitializeAsync()
    {
        _app = await PlatformApp.StartModelAsync(builder =>
        {
            builder.AddNativePostgres("postgres", builder.AddParameter("postgres-password", Guid.NewGuid().ToString("N"), secret: true).Resource);
            builder.AddNativeRedis("redis", builder.AddParameter("redis-password", RedisPassword, secret: true).Resource);
            builder.AddNativeObjectStore("objectstore", builder.AddParameter("objectstore-user", "platform").Resource,
                builder.AddParameter("objectstore-password", Guid.NewGuid().ToString("N"), secret: true).Resource);
        });
        PostgresConnectionString = await _app.GetConnectionStringAsync("postgres");
        RedisConnectionString = await _app.GetConnectionStringAsync("redis");
        ObjectStoreConnectionString = await _app.GetConnectionStringAsync("objectstore");
    }

    /// <summary>A fresh, empty database on the server, for a test that must not see others' tables.</summary>
    public async Task<string> CreateDatabaseAsync(CancellationToken cancellationToken)
    {
        var name = "t_" + Guid.NewGuid().ToString("N")[..16];
        await using var connection = new NpgsqlConnection(PostgresConnectionString + ";Database=postgres");
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
        return new NpgsqlConnectionStringBuilder(PostgresConnectionString) { Database = name, Pooling = false }.ConnectionString;
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.DisposeAsync();
        }
    }
}
