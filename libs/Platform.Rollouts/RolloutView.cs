using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using StackExchange.Redis;

namespace Platform.Rollouts;

/// <summary>
/// Redis pub/sub of rollout changes on <see cref="RolloutKeys.Channel"/> (the payload is the model name). Receivers re-read
/// Postgres rather than trust the message; delivery is best effort, which is why <see cref="RolloutMonitor"/> also reconciles.
/// </summary>
public sealed partial class RolloutNotifications(IConnectionMultiplexer redis, ILogger<RolloutNotifications> logger)
{
    /// <summary>Announces that <paramref name="model"/>'s rollout changed; a Redis failure is logged, not thrown.</summary>
    public async Task PublishAsync(string model, CancellationToken cancellationToken = default)
    {
        try
        {
            await redis.GetDatabase().PublishAsync(RedisChannel.Literal(RolloutKeys.Channel), model).WaitAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogPublishFailed(logger, model, ex.Message);
        }
    }

    /// <summary>Calls <paramref name="handler"/> with the model name of every announced change.</summary>
    /// <exception cref="RedisException">Redis cannot be reached (callers retry).</exception>
    public Task SubscribeAsync(Action<string> handler, CancellationToken cancellationToken = default) =>
        redis.GetSubscriber().SubscribeAsync(RedisChannel.Literal(RolloutKeys.Channel), (_, message) => handler((string?)message ?? string.Empty))
            .WaitAsync(cancellationToken);

    [LoggerMessage(EventId = 40, Level = LogLevel.Warning, Message = "Could not announce the rollout change of {Model}; replicas pick it up at their next reconcile: {Reason}")]
    private static partial void LogPublishFailed(ILogger logger, string model, string reason);
}

/// <summary>Options of <see cref="RolloutMonitor"/> (section <c>Rollouts</c>).</summary>
public sealed class RolloutViewOptions
{
    /// <summary>Configuration section.</summary>
    public const string SectionName = "Rollouts";

    /// <summary>How often the rollouts are re-read regardless of notifications (a lost pub/sub message is stale at most this long).</summary>
    public TimeSpan ReconcileInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Retry delay while the tables do not exist yet (AdminApi migrates at start) or Postgres is down.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>The rollouts that decide routing, as a service last read them.</summary>
public interface IRolloutView
{
    /// <summary>The model's rollout in effect, or null.</summary>
    Rollout? Find(string model);

    /// <summary>Whether the rollouts have been read at least once.</summary>
    bool Loaded { get; }

    /// <summary>Re-reads the rollouts now.</summary>
    Task RefreshAsync(CancellationToken cancellationToken = default);
}

/// <summary>
/// Keeps the rollouts in effect in memory (InferenceApi): re-reads Postgres on every <see cref="RolloutNotifications"/>
/// message and every <see cref="RolloutViewOptions.ReconcileInterval"/>, so routing never waits for a database.
/// </summary>
public sealed partial class RolloutMonitor(
    RolloutStore store,
    RolloutNotifications notifications,
    IOptions<RolloutViewOptions> options,
    ILogger<RolloutMonitor> logger) : BackgroundService, IRolloutView
{
    private readonly SemaphoreSlim _refreshing = new(1, 1);
    private ImmutableDictionary<string, Rollout> _current = ImmutableDictionary<string, Rollout>.Empty;
    private volatile bool _loaded;
    private int _pendingSignal;
    private readonly SemaphoreSlim _signal = new(0, 1);

    /// <inheritdoc />
    public bool Loaded => _loaded;

    /// <inheritdoc />
    public Rollout? Find(string model) => Volatile.Read(ref _current).GetValueOrDefault(model);

    /// <inheritdoc />
    public async Task RefreshAsync(CancellationToken cancellationToken = default)
    {
        await _refreshing.WaitAsync(cancellationToken);
        try
        {
            var rollouts = await store.ListInEffectAsync(cancellationToken);
            var next = rollouts.ToImmutableDictionary(r => r.Model, StringComparer.Ordinal);
            var previous = Interlocked.Exchange(ref _current, next);
            _loaded = true;
            foreach (var rollout in next.Values)
            {
                if (!previous.TryGetValue(rollout.Model, out var before) || before.Generation != rollout.Generation || before.Id != rollout.Id)
                {
                    LogApplied(logger, rollout.Model, rollout.Id, rollout.Generation, rollout.State, rollout.Mode, rollout.StableVersion, rollout.CandidateVersion,
                        rollout.CandidatePercent);
                }
            }
        }
        finally
        {
            _refreshing.Release();
        }
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var subscribed = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (!subscribed)
                {
                    await notifications.SubscribeAsync(_ => Signal(), stoppingToken);
                    subscribed = true;
                }

                await RefreshAsync(stoppingToken);
                // Wakes on a notification or at the reconcile interval, whichever comes first.
                await _signal.WaitAsync(options.Value.ReconcileInterval, stoppingToken);
                Interlocked.Exchange(ref _pendingSignal, 0);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or RedisException or TimeoutException or InvalidOperationException)
            {
                LogRefreshFailed(logger, ex.Message);
                try
                {
                    await Task.Delay(options.Value.RetryDelay, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        base.Dispose();
        _refreshing.Dispose();
        _signal.Dispose();
    }

    private void Signal()
    {
        if (Interlocked.Exchange(ref _pendingSignal, 1) == 0)
        {
            try
            {
                _signal.Release();
            }
            catch (SemaphoreFullException)
            {
                // Already signalled.
            }
        }
    }

    [LoggerMessage(EventId = 41, Level = LogLevel.Information,
        Message = "Rollout of {Model} applied: {RolloutId} generation {Generation}, {State}, {Mode}, stable {StableVersion}, candidate {CandidateVersion} at {CandidatePercent} %")]
    private static partial void LogApplied(ILogger logger, string model, Guid rolloutId, long generation, string state, string mode, long stableVersion,
        long candidateVersion, double candidatePercent);

    [LoggerMessage(EventId = 42, Level = LogLevel.Warning, Message = "Could not read the rollouts; keeping the last ones read and retrying: {Reason}")]
    private static partial void LogRefreshFailed(ILogger logger, string reason);
}

/// <summary>Which version of a rollout answers a request.</summary>
public static class RolloutRouter
{
    /// <summary>
    /// Whether the candidate answers: sticky requests hash their key (request id or entity id) with the rollout's id into
    /// [0, 100), so retries land on the same version for as long as the percentage stays; others draw at random.
    /// </summary>
    /// <param name="rollout">The rollout in effect.</param>
    /// <param name="requestId">The request's <c>id</c>, if any.</param>
    /// <param name="entityId">The request's <c>parameters.entity_id</c>, if any.</param>
    /// <param name="random">Source of the draw for requests without a sticky key.</param>
    public static bool CandidateAnswers(Rollout rollout, string? requestId, string? entityId, Random random)
    {
        ArgumentNullException.ThrowIfNull(rollout);
        ArgumentNullException.ThrowIfNull(random);
        return Draw(rollout, rollout.AnsweringPercent, requestId, entityId, random);
    }

    /// <summary>Whether a request gets a shadow copy on the candidate (same draw rules as <see cref="CandidateAnswers"/>).</summary>
    public static bool ShadowCopied(Rollout rollout, string? requestId, string? entityId, Random random)
    {
        ArgumentNullException.ThrowIfNull(rollout);
        ArgumentNullException.ThrowIfNull(random);
        return Draw(rollout, rollout.ShadowPercent, requestId, entityId, random);
    }

    /// <summary>The sticky point of <paramref name="key"/> in [0, 100) for rollout <paramref name="rolloutId"/>.</summary>
    public static double StickyPoint(Guid rolloutId, string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes($"{rolloutId:N}:{key}"), hash);
        var value = BitConverter.ToUInt64(hash[..8]) >> 11; // 53 bits: exact in a double
        return value / (double)(1UL << 53) * 100;
    }

    private static bool Draw(Rollout rollout, double percent, string? requestId, string? entityId, Random random)
    {
        if (percent <= 0)
        {
            return false;
        }

        if (percent >= 100)
        {
            return true;
        }

        var key = rollout.Sticky switch
        {
            StickyModes.RequestId => requestId,
            StickyModes.Entity => entityId,
            _ => null,
        };
        var point = string.IsNullOrEmpty(key) ? random.NextDouble() * 100 : StickyPoint(rollout.Id, key);
        return point < percent;
    }
}
