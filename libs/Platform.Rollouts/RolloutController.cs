using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using StackExchange.Redis;

namespace Platform.Rollouts;

/// <summary>Options of <see cref="RolloutController"/> and <see cref="RolloutOutcomeFlusher"/> (section <c>Rollouts</c>).</summary>
public sealed class RolloutControllerOptions
{
    /// <summary>How often the controller judges every running rollout (and InferenceApi reports outcomes).</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long the controller lease lasts without renewal: when the AdminApi replica holding it dies, another takes over
    /// after at most this long.
    /// </summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(10);
}

/// <summary>Telemetry of rollout decisions: meter and activity source <c>Platform.Rollouts</c>.</summary>
public sealed class RolloutTelemetry : IDisposable
{
    /// <summary>Meter and activity source name.</summary>
    public const string Name = "Platform.Rollouts";

    private readonly ActivitySource _source = new(Name);
    private readonly Counter<long> _decisions;
    private readonly Histogram<double> _percent;

    /// <summary>Creates the instruments.</summary>
    public RolloutTelemetry(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        var meter = meterFactory.Create(Name);
        _decisions = meter.CreateCounter<long>("platform.rollouts.changes", description: "Rollout changes by model, kind (created, updated, step, promoted, rolled_back, ended) and actor");
        _percent = meter.CreateHistogram<double>("platform.rollouts.candidate_percent", unit: "%", description: "Candidate percentage set by each rollout change");
    }

    /// <summary>The activity source of the controller's judgements.</summary>
    public ActivitySource Source => _source;

    /// <summary>Counts a change and adds it as an event to the current activity.</summary>
    public void Changed(RolloutEvent change)
    {
        ArgumentNullException.ThrowIfNull(change);
        var tags = new TagList { { "model", change.Model }, { "kind", change.Kind }, { "actor", change.Actor } };
        _decisions.Add(1, tags);
        _percent.Record(change.ToPercent, tags);
        Activity.Current?.AddEvent(new ActivityEvent($"rollout.{change.Kind}", tags: new ActivityTagsCollection
        {
            ["rollout.id"] = change.RolloutId.ToString(),
            ["model"] = change.Model,
            ["rollout.from_percent"] = change.FromPercent,
            ["rollout.to_percent"] = change.ToPercent,
            ["rollout.reason"] = change.Reason,
        }));
    }

    /// <inheritdoc />
    public void Dispose() => _source.Dispose();
}

/// <summary>
/// Judges every running rollout each <see cref="RolloutControllerOptions.Interval"/> (AdminApi): reads its outcomes from
/// Redis, asks <see cref="GuardrailEvaluator"/> and applies the decision (rollback, step, promotion) under the rollout's
/// generation, so an admin's change made meanwhile wins. One replica at a time holds the controller lease. Every decision
/// is an event (Postgres), a log line, a metric and an event on the judgement's activity, and is announced to InferenceApi.
/// </summary>
public sealed partial class RolloutController(
    RolloutStore store,
    RolloutOutcomeReader outcomes,
    RolloutNotifications notifications,
    RolloutTelemetry telemetry,
    IConnectionMultiplexer redis,
    IOptions<RolloutControllerOptions> options,
    TimeProvider timeProvider,
    ILogger<RolloutController> logger) : BackgroundService
{
    private readonly string _holder = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}";
    private bool _leader;

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.Interval, timeProvider);
        do
        {
            try
            {
                if (await HoldLeaseAsync())
                {
                    await JudgeAllAsync(stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex) when (ex is NpgsqlException or RedisException or TimeoutException or InvalidOperationException)
            {
                LogJudgeFailed(logger, ex.Message);
            }
        }
        while (await WaitAsync(timer, stoppingToken));

        if (_leader)
        {
            try
            {
                await redis.GetDatabase().LockReleaseAsync(RolloutKeys.ControllerLease, _holder);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                // The lease expires on its own.
            }
        }
    }

    /// <summary>Judges every running rollout once (the loop's body; public for tests that drive time themselves).</summary>
    /// <returns>The changes made.</returns>
    public async Task<IReadOnlyList<RolloutEvent>> JudgeAllAsync(CancellationToken cancellationToken)
    {
        var changes = new List<RolloutEvent>();
        foreach (var rollout in await store.ListInEffectAsync(cancellationToken))
        {
            if (rollout.State != RolloutStates.Running)
            {
                continue;
            }

            var now = timeProvider.GetUtcNow();
            var (from, to) = GuardrailEvaluator.WindowOf(rollout, now);
            var window = await outcomes.ReadAsync(rollout, from, to, cancellationToken);
            if (GuardrailEvaluator.Evaluate(rollout, window, now) is not { } decision)
            {
                continue;
            }

            using var activity = telemetry.Source.StartActivity("rollout.judge");
            activity?.SetTag("model", rollout.Model);
            activity?.SetTag("rollout.id", rollout.Id.ToString());
            var result = await store.ChangeAsync(rollout.Model, new RolloutChangeRequest(
                decision.Kind,
                RolloutActors.Controller,
                decision.Reason,
                current => current with { CandidatePercent = decision.ToPercent, Mode = decision.Mode, State = decision.State },
                NewStep: true,
                decision.Observed,
                rollout.Generation), now, cancellationToken);
            if (result.Event is not { } change)
            {
                continue; // changed by an admin meanwhile: judged again on the next tick
            }

            telemetry.Changed(change);
            LogDecision(logger, rollout.Model, rollout.Id, change.Kind, change.FromPercent, change.ToPercent, change.Reason);
            await notifications.PublishAsync(rollout.Model, cancellationToken);
            changes.Add(change);
        }

        return changes;
    }

    private async Task<bool> HoldLeaseAsync()
    {
        var database = redis.GetDatabase();
        var lease = options.Value.LeaseDuration;
        _leader = _leader
            ? await database.LockExtendAsync(RolloutKeys.ControllerLease, _holder, lease) || await database.LockTakeAsync(RolloutKeys.ControllerLease, _holder, lease)
            : await database.LockTakeAsync(RolloutKeys.ControllerLease, _holder, lease);
        return _leader;
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken cancellationToken)
    {
        try
        {
            return await timer.WaitForNextTickAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    [LoggerMessage(EventId = 50, Level = LogLevel.Warning, Message = "Rollout {RolloutId} of {Model} {Kind} by the controller: {FromPercent} % -> {ToPercent} %: {Reason}")]
    private static partial void LogDecision(ILogger logger, string model, Guid rolloutId, string kind, double? fromPercent, double toPercent, string reason);

    [LoggerMessage(EventId = 51, Level = LogLevel.Warning, Message = "Could not judge the rollouts this time; retrying at the next interval: {Reason}")]
    private static partial void LogJudgeFailed(ILogger logger, string reason);
}

/// <summary>Writes <see cref="RolloutOutcomeRecorder"/>'s counts to Redis every <see cref="RolloutControllerOptions.Interval"/> (InferenceApi).</summary>
public sealed class RolloutOutcomeFlusher(RolloutOutcomeRecorder recorder, IOptions<RolloutControllerOptions> options, TimeProvider timeProvider) : BackgroundService
{
    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.Interval, timeProvider);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                await recorder.FlushAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        // What the last interval counted still goes out on a graceful stop.
        using var last = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await recorder.FlushAsync(last.Token);
        }
        catch (OperationCanceledException)
        {
        }
    }
}
