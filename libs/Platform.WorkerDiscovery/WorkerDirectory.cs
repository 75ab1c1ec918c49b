using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Platform.WorkerDiscovery;

/// <summary>
/// Runs in a caller (InferenceApi, ContextEnrichment): re-reads the announced workers every
/// <see cref="WorkerDiscoveryOptions.RefreshInterval"/> and drops announcements older than the time to live. When Redis cannot
/// be read the last list stays: a worker that is gone fails its requests, which move to another replica.
/// </summary>
public sealed partial class WorkerDirectory(
    IConnectionMultiplexer redis,
    IOptions<WorkerDiscoveryOptions> options,
    TimeProvider timeProvider,
    ILogger<WorkerDirectory> logger) : BackgroundService, IWorkerDirectory
{
    private readonly WorkerDiscoveryOptions _options = options.Value;
    private readonly TaskCompletionSource _firstRefresh = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile IReadOnlyList<WorkerEndpoint> _workers = [];

    /// <inheritdoc />
    public IReadOnlyList<WorkerEndpoint> Workers => _workers;

    /// <inheritdoc />
    public Task WaitForFirstRefreshAsync(CancellationToken cancellationToken) => _firstRefresh.Task.WaitAsync(cancellationToken);

    /// <summary>Reads the live announcements once and replaces <see cref="Workers"/>.</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        var db = redis.GetDatabase();
        var heartbeats = _options.HeartbeatsKey;
        var endpoints = _options.EndpointsKey;
        var oldest = timeProvider.GetUtcNow().Subtract(_options.TimeToLive).ToUnixTimeMilliseconds();

        var expired = await db.SortedSetRangeByScoreAsync(heartbeats, double.NegativeInfinity, oldest, Exclude.Stop).WaitAsync(cancellationToken).ConfigureAwait(false);
        if (expired.Length > 0)
        {
            // Every caller may do this; removing twice is harmless.
            await db.SortedSetRemoveAsync(heartbeats, expired).WaitAsync(cancellationToken).ConfigureAwait(false);
            await db.HashDeleteAsync(endpoints, expired).WaitAsync(cancellationToken).ConfigureAwait(false);
            LogExpired(logger, string.Join(", ", expired));
        }

        var live = await db.SortedSetRangeByScoreAsync(heartbeats, oldest, double.PositiveInfinity).WaitAsync(cancellationToken).ConfigureAwait(false);
        var values = live.Length == 0 ? [] : await db.HashGetAsync(endpoints, live).WaitAsync(cancellationToken).ConfigureAwait(false);
        var workers = new List<WorkerEndpoint>(values.Length);
        foreach (var value in values)
        {
            if (value.HasValue && TryParse(value.ToString()) is { } worker)
            {
                workers.Add(worker);
            }
        }

        workers.Sort((a, b) => string.CompareOrdinal(a.InstanceId, b.InstanceId));
        var previous = _workers;
        _workers = workers;
        if (!previous.Select(w => w.Address).SequenceEqual(workers.Select(w => w.Address)))
        {
            LogChanged(logger, workers.Count, string.Join(", ", workers.Select(w => $"{w.InstanceId}={w.GrpcAddress ?? w.Address}")));
        }
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_options.RefreshInterval, timeProvider);
        do
        {
            try
            {
                await RefreshAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                LogRefreshFailed(logger, _workers.Count, ex.Message);
            }
            finally
            {
                _firstRefresh.TrySetResult();
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    private WorkerEndpoint? TryParse(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<WorkerEndpoint>(json);
        }
        catch (JsonException ex)
        {
            LogUnreadable(logger, ex.Message);
            return null;
        }
    }

    [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "Worker replicas now {Count}: {Workers}")]
    private static partial void LogChanged(ILogger logger, int count, string workers);

    [LoggerMessage(EventId = 11, Level = LogLevel.Warning, Message = "Dropped worker announcements past their time to live: {Workers}")]
    private static partial void LogExpired(ILogger logger, string workers);

    [LoggerMessage(EventId = 12, Level = LogLevel.Warning, Message = "Could not read worker announcements from Redis; keeping the last {Count}: {Reason}")]
    private static partial void LogRefreshFailed(ILogger logger, int count, string reason);

    [LoggerMessage(EventId = 13, Level = LogLevel.Warning, Message = "Ignoring an unreadable worker announcement: {Reason}")]
    private static partial void LogUnreadable(ILogger logger, string reason);
}
