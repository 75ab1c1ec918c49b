using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Platform.Redis;

/// <summary>
/// Owns one <see cref="ConnectionMultiplexer"/> per process, created lazily so start-up never waits on Redis.
/// abortConnect=false makes the multiplexer keep reconnecting in the background instead of failing for good.
/// </summary>
public sealed partial class RedisConnection : IRedisConnection, IAsyncDisposable, IDisposable
{
    private readonly Lazy<Task<ConnectionMultiplexer>> _multiplexer;
    private readonly ILogger<RedisConnection> _logger;

    /// <summary>Creates the connection from a StackExchange.Redis configuration string ("host:port,password=...").</summary>
    public RedisConnection(string configuration, ILogger<RedisConnection> logger)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(configuration);
        _logger = logger;
        var options = ConfigurationOptions.Parse(configuration);
        options.AbortOnConnectFail = false;
        // Reconnect on the next heartbeat after Redis is back instead of backing off exponentially: while Redis is away
        // enforcement fails closed (503), so every second of backoff is a second of refused inferences.
        options.ReconnectRetryPolicy ??= new LinearRetry(500);
        // Without a connection a command fails at once instead of waiting in a backlog for the timeout (5 s): callers
        // answer 503 + Retry-After or read through to Postgres, which beats holding every request for seconds.
        options.BacklogPolicy = BacklogPolicy.FailFast;
        _multiplexer = new Lazy<Task<ConnectionMultiplexer>>(() => ConnectAsync(options), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <inheritdoc />
    public bool IsConnected => _multiplexer.IsValueCreated && _multiplexer.Value.IsCompletedSuccessfully && _multiplexer.Value.Result.IsConnected;

    /// <inheritdoc />
    public async Task<IDatabase> GetDatabaseAsync(CancellationToken cancellationToken = default)
    {
        // The connect takes no CancellationToken; stop waiting on it, the connect itself carries on in the background.
        var multiplexer = await _multiplexer.Value.WaitAsync(cancellationToken);
        return multiplexer.GetDatabase();
    }

    /// <inheritdoc />
    public async Task<TimeSpan> PingAsync(CancellationToken cancellationToken = default)
    {
        var database = await GetDatabaseAsync(cancellationToken);
        return await database.PingAsync().WaitAsync(cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_multiplexer.IsValueCreated && _multiplexer.Value.IsCompletedSuccessfully)
        {
            await _multiplexer.Value.Result.CloseAsync(allowCommandsToComplete: true);
            _multiplexer.Value.Result.Dispose();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_multiplexer.IsValueCreated && _multiplexer.Value.IsCompletedSuccessfully)
        {
            _multiplexer.Value.Result.Dispose();
        }
    }

    private async Task<ConnectionMultiplexer> ConnectAsync(ConfigurationOptions options)
    {
        var multiplexer = await ConnectionMultiplexer.ConnectAsync(options);
        multiplexer.ConnectionFailed += (_, e) => LogConnectionFailed(_logger, e.EndPoint?.ToString(), e.FailureType.ToString(), e.Exception?.Message);
        multiplexer.ConnectionRestored += (_, e) => LogConnectionRestored(_logger, e.EndPoint?.ToString());
        if (!multiplexer.IsConnected)
        {
            LogNotConnectedYet(_logger, string.Join(",", options.EndPoints.Select(e => e.ToString())));
        }

        return multiplexer;
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Redis connection to {Endpoint} failed ({FailureType}): {Reason}")]
    private static partial void LogConnectionFailed(ILogger logger, string? endpoint, string failureType, string? reason);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Redis connection to {Endpoint} restored")]
    private static partial void LogConnectionRestored(ILogger logger, string? endpoint);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Redis at {Endpoints} not reachable yet; reconnecting in the background")]
    private static partial void LogNotConnectedYet(ILogger logger, string endpoints);
}
