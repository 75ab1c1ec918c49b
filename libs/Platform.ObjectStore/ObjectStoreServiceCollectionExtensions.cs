using Amazon.S3;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Platform.ObjectStore;

/// <summary>Registration of <see cref="IObjectStore"/> and its health check.</summary>
public static class ObjectStoreServiceCollectionExtensions
{
    /// <summary>Default connection name: configuration key <c>ConnectionStrings:objectstore</c>.</summary>
    public const string DefaultConnectionName = "objectstore";

    /// <summary>Name of the health check.</summary>
    public const string HealthCheckName = "objectstore";

    /// <summary>
    /// Registers <see cref="IObjectStore"/> (S3 API) from <c>ConnectionStrings:{connectionName}</c>, options from section
    /// <c>ObjectStore</c> (Bucket, MultipartThresholdBytes, PartSizeBytes, Region, RequestTimeout) and the <c>objectstore</c> health check.
    /// </summary>
    /// <exception cref="InvalidOperationException">The connection string is missing or malformed.</exception>
    public static IHostApplicationBuilder AddPlatformObjectStore(this IHostApplicationBuilder builder, string connectionName = DefaultConnectionName)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var connectionString = builder.Configuration.GetConnectionString(connectionName);
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new InvalidOperationException(
                $"Connection string '{connectionName}' is missing: set configuration key 'ConnectionStrings:{connectionName}' "
                + $"(environment variable 'ConnectionStrings__{connectionName}'), e.g. 'Endpoint=http://127.0.0.1:9000;AccessKey=...;SecretKey=...'.");
        }

        ObjectStoreConnection connection;
        try
        {
            connection = ObjectStoreConnection.Parse(connectionString);
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException)
        {
            throw new InvalidOperationException($"Connection string '{connectionName}' is malformed: {ex.Message}", ex);
        }

        builder.Services.AddOptions<ObjectStoreOptions>().BindConfiguration(ObjectStoreOptions.SectionName);
        builder.Services.TryAddSingleton<IAmazonS3>(sp =>
        {
            var options = sp.GetRequiredService<IOptions<ObjectStoreOptions>>().Value;
            return S3ObjectStore.CreateClient(connection, options.Region, options.RequestTimeout);
        });
        builder.Services.TryAddSingleton<S3ObjectStore>();
        builder.Services.TryAddSingleton<IObjectStore>(sp => sp.GetRequiredService<S3ObjectStore>());
        builder.Services.AddHealthChecks().AddCheck<ObjectStoreHealthCheck>(HealthCheckName, timeout: TimeSpan.FromSeconds(5));
        return builder;
    }

    /// <summary>Creates the bucket at start-up in the background (retrying while the server is not up yet).</summary>
    public static IHostApplicationBuilder AddPlatformObjectStoreBucketInitializer(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddHostedService<BucketInitializer>();
        return builder;
    }
}

/// <summary>Healthy when the bucket can be listed (endpoint up, credentials valid, bucket present).</summary>
internal sealed class ObjectStoreHealthCheck(S3ObjectStore store) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await store.ProbeAsync(cancellationToken);
            return HealthCheckResult.Healthy($"bucket '{store.Bucket}' reachable");
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"bucket '{store.Bucket}' unreachable: {ex.Message}", ex);
        }
    }
}

/// <summary>Ensures the bucket exists; the object store may come up after us, so it retries with backoff.</summary>
internal sealed partial class BucketInitializer(IObjectStore store, TimeProvider timeProvider, ILogger<BucketInitializer> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var delay = TimeSpan.FromMilliseconds(250);
        for (var attempt = 1; !stoppingToken.IsCancellationRequested; attempt++)
        {
            try
            {
                await store.EnsureBucketAsync(stoppingToken);
                LogReady(logger, store.Bucket);
                return;
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                LogRetry(logger, store.Bucket, attempt, delay.TotalMilliseconds, ex.Message);
            }

            await Task.Delay(delay, timeProvider, stoppingToken);
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(10).Ticks));
        }
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "Bucket {Bucket} is ready")]
    private static partial void LogReady(ILogger logger, string bucket);

    [LoggerMessage(EventId = 21, Level = LogLevel.Warning, Message = "Could not ensure bucket {Bucket} (attempt {Attempt}), retrying in {DelayMs} ms: {Reason}")]
    private static partial void LogRetry(ILogger logger, string bucket, int attempt, double delayMs, string reason);
}
