using StackExchange.Redis;

namespace Platform.Redis;

/// <summary>
/// The shared Redis connection. Deliberately narrow: features (rate limits, queues, caches) add their own typed
/// interfaces on top instead of spreading the raw client through the code base.
/// </summary>
public interface IRedisConnection
{
    /// <summary>Whether the underlying multiplexer currently has a live connection.</summary>
    bool IsConnected { get; }

    /// <summary>The database handle, connecting on first use. The handle survives reconnects.</summary>
    Task<IDatabase> GetDatabaseAsync(CancellationToken cancellationToken = default);

    /// <summary>Round-trip PING.</summary>
    /// <exception cref="RedisConnectionException">The server cannot be reached.</exception>
    Task<TimeSpan> PingAsync(CancellationToken cancellationToken = default);
}
