using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Platform.Redis;

/// <summary>Registration of <see cref="IRedisConnection"/> and the <c>redis</c> health check.</summary>
public static class RedisServiceCollectionExtensions
{
    /// <summary>Default connection name: configuration key <c>ConnectionStrings:redis</c>.</summary>
    public const string DefaultConnectionName = "redis";

    /// <summary>Name of the health check.</summary>
    public const string HealthCheckName = "redis";

    /// <summary>Registers a singleton <see cref="IRedisConnection"/> from <c>ConnectionStrings:{connectionName}</c> and a PING health check.</summary>
    /// <exception cref="InvalidOperationException">The connection string is missing.</exception>
    public static IHostApplicationBuilder AddPlatformRedis(this IHostApplicationBuilder builder, string connectionName = DefaultConnectionName)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var connectionString = builder.Configuration.GetConnectionString(connectionName);
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new InvalidOperationException(
                $"Connection string '{connectionName}' is missing: set configuration key 'ConnectionStrings:{connectionName}' "
                + $"(environment variable 'ConnectionStrings__{connectionName}'), e.g. '127.0.0.1:6379,password=...'.");
        }

        builder.Services.TryAddSingleton<IRedisConnection>(sp =>
            new RedisConnection(connectionString, sp.GetRequiredService<ILogger<RedisConnection>>()));
        builder.Services.AddHealthChecks().AddCheck<RedisHealthCheck>(HealthCheckName, timeout: TimeSpan.FromSeconds(5));
        return builder;
    }
}

/// <summary>Healthy when Redis answers PING.</summary>
internal sealed class RedisHealthCheck(IRedisConnection redis) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var latency = await redis.PingAsync(cancellationToken);
            return HealthCheckResult.Healthy($"PING {latency.TotalMilliseconds:F1} ms");
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"Redis unreachable: {ex.Message}", ex);
        }
    }
}
