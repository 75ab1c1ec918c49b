using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Platform.Redis;

/// <summary>Redis for the services: Aspire's StackExchange.Redis integration with the connection behaviour Platform relies on.</summary>
public static class RedisServiceCollectionExtensions
{
    /// <summary>The connection name the AppHost gives Redis (<c>ConnectionStrings:redis</c>).</summary>
    public const string DefaultConnectionName = "redis";

    /// <summary>Name of the health check Aspire's Redis integration adds.</summary>
    public const string HealthCheckName = "StackExchange.Redis";

    /// <summary>
    /// Registers <see cref="IConnectionMultiplexer"/> through Aspire's <c>AddRedisClient</c> (health check) with
    /// <see cref="Configure"/>'s settings, and logs when the connection drops and comes back. Aspire's Redis tracing stays
    /// off: it holds spans and commands for seconds (<see cref="RedisSpans"/>, which the request paths use instead).
    /// </summary>
    public static IHostApplicationBuilder AddPlatformRedisClient(this IHostApplicationBuilder builder, string connectionName = DefaultConnectionName)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddRedisClient(connectionName, configureSettings: settings => settings.DisableTracing = true, configureOptions: Configure);
        // The multiplexer logs every reconnect attempt (every 500 ms while Redis is away) at Error with a full stack trace,
        // which buries everything else in the console; RedisConnectionEvents reports each drop and restoration in one line.
        builder.Logging.AddFilter("StackExchange.Redis", LogLevel.Critical);
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, RedisConnectionEvents>());
        return builder;
    }

    /// <summary>
    /// Adds <see cref="RedisMemoryMonitor"/>: Redis's memory use and bound as metrics (<c>RedisMemory:Interval</c>, 15 s).
    /// One service per deployment is enough (AdminApi, which also drains the usage records that fill it).
    /// </summary>
    public static IHostApplicationBuilder AddPlatformRedisMemoryMonitor(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddOptions<RedisMemoryOptions>().BindConfiguration(RedisMemoryOptions.SectionName)
            .Validate(o => o.Interval > TimeSpan.Zero, $"{RedisMemoryOptions.SectionName}:Interval must be positive").ValidateOnStart();
        builder.Services.TryAddSingleton<RedisMemoryMonitor>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<RedisMemoryMonitor>());
        return builder;
    }

    /// <summary>
    /// Start without Redis and keep reconnecting (no abort on connect); reconnect every 500 ms rather than backing off, since
    /// enforcement fails closed while Redis is away and every second of backoff is a second of refused inferences; and fail
    /// a command at once without a connection instead of holding it in a backlog for the timeout (5 s), so callers answer
    /// 503 + Retry-After or read through to Postgres.
    /// </summary>
    public static void Configure(ConfigurationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.AbortOnConnectFail = false;
        options.ReconnectRetryPolicy = new LinearRetry(500);
        options.BacklogPolicy = BacklogPolicy.FailFast;
    }
}

/// <summary>Logs the multiplexer's connection failures and restorations: the events an operator needs to see.</summary>
internal sealed partial class RedisConnectionEvents(IConnectionMultiplexer redis, ILogger<RedisConnectionEvents> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        redis.ConnectionFailed += OnFailed;
        redis.ConnectionRestored += OnRestored;
        if (!redis.IsConnected)
        {
            LogNotConnectedYet(logger, redis.Configuration);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        redis.ConnectionFailed -= OnFailed;
        redis.ConnectionRestored -= OnRestored;
        return Task.CompletedTask;
    }

    private void OnFailed(object? sender, ConnectionFailedEventArgs e) =>
        LogConnectionFailed(logger, e.EndPoint?.ToString(), e.FailureType.ToString(), e.Exception?.Message);

    private void OnRestored(object? sender, ConnectionFailedEventArgs e) => LogConnectionRestored(logger, e.EndPoint?.ToString());

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Redis connection to {EndPoint} failed ({FailureType}): {Reason}; reconnecting every 500 ms")]
    private static partial void LogConnectionFailed(ILogger logger, string? endPoint, string failureType, string? reason);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Redis connection to {EndPoint} restored")]
    private static partial void LogConnectionRestored(ILogger logger, string? endPoint);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Redis is not reachable yet ({Configuration}); commands fail fast until it is")]
    private static partial void LogNotConnectedYet(ILogger logger, string configuration);
}
