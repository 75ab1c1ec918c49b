using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Aspire.Hosting;
using Platform.Hosting;
using StackExchange.Redis;
using Platform.TestSupport;

[assembly: AssemblyFixture(typeof(Platform.Tenancy.Tests.InfrastructureFixture))]

namespace Platform.Tenancy.Tests;

/// <summary>Real Redis and Postgres for this assembly: Platform's native resources run by Aspire.</summary>
public sealed class InfrastructureFixture : IAsyncLifetime
{
    public PlatformApp App { get; private set; } = null!;

    public string RedisConnectionString { get; private set; } = string.Empty;

    /// <summary>A second Redis for tests that change server-wide settings (e.g. fill it with <c>maxmemory</c>).</summary>
    public string IsolatedRedisConnectionString { get; private set; } = string.Empty;

    public NpgsqlDataSource Db { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        App = await PlatformApp.StartModelAsync(builder =>
        {
            builder.AddNativeRedis("redis", builder.AddParameter("redis-password", Guid.NewGuid().ToString("N"), secret: true).Resource);
            builder.AddNativeRedis("redis-isolated", builder.AddParameter("redis-isolated-password", Guid.NewGuid().ToString("N"), secret: true).Resource);
            builder.AddNativePostgres("postgres", builder.AddParameter("postgres-password", Guid.NewGuid().ToString("N"), secret: true).Resource)
                .AddDatabase("db");
        });
        RedisConnectionString = await App.GetConnectionStringAsync("redis");
        IsolatedRedisConnectionString = await App.GetConnectionStringAsync("redis-isolated");
        Db = NpgsqlDataSource.Create(await App.GetConnectionStringAsync("db"));
        // AdminApi's own migrations, in order (the same files, embedded).
        foreach (var name in new[] { "migrations.0200.sql", "migrations.0201.sql" })
        {
            using var sql = new StreamReader(typeof(InfrastructureFixture).Assembly.GetManifestResourceStream(name)!);
            await using var migrate = Db.CreateCommand(await sql.ReadToEndAsync());
            await migrate.ExecuteNonQueryAsync();
        }
    }

    /// <summary>A connection of its own, as one service replica holds one (settings as the services use them).</summary>
    public ConnectionMultiplexer NewRedisConnection() => ConnectionMultiplexer.Connect(RedisConnectionString, Platform.Redis.RedisServiceCollectionExtensions.Configure);

    /// <summary>
    /// Locks <paramref name="table"/> against reads and writes until the returned connection is disposed (which rolls
    /// back its transaction): holds a load that reads it until every caller of a test is waiting.
    /// </summary>
    public async Task<NpgsqlConnection> LockTableAsync(string table, CancellationToken cancellationToken)
    {
        var connection = await Db.OpenConnectionAsync(cancellationToken);
        var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using var command = new NpgsqlCommand($"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE", connection, transaction);
        await command.ExecuteNonQueryAsync(cancellationToken);
        return connection;
    }

    /// <summary>How many sessions wait on a lock in a statement containing <paramref name="text"/>.</summary>
    public async Task<long> WaitingOnLocksAsync(string text, CancellationToken cancellationToken)
    {
        await using var command = Db.CreateCommand(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND strpos(query, $1) > 0 AND pid <> pg_backend_pid()");
        command.Parameters.AddWithValue(text);
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    public async ValueTask DisposeAsync()
    {
        await Db.DisposeAsync();
        await App.DisposeAsync();
    }
}
