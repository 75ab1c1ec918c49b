using System.Collections.Immutable;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Platform.ModelRegistry;

/// <summary>The active model versions at one point in time, keyed by model name then version.</summary>
/// <param name="Models">Active versions per model name, ascending by version.</param>
/// <param name="RefreshedAt">When the registry was read.</param>
public sealed record ActiveModelSet(ImmutableDictionary<string, ImmutableArray<ActiveModelVersion>> Models, DateTimeOffset RefreshedAt)
{
    /// <summary>Nothing known yet (registry not read, or its tables not created yet).</summary>
    public static ActiveModelSet Empty { get; } = new(ImmutableDictionary<string, ImmutableArray<ActiveModelVersion>>.Empty, DateTimeOffset.MinValue);

    /// <summary>The given active version, or with <paramref name="version"/> null the highest active one.</summary>
    public ActiveModelVersion? Find(string name, long? version = null)
    {
        if (!Models.TryGetValue(name, out var versions) || versions.IsEmpty)
        {
            return null;
        }
        if (version is null)
        {
            return versions[^1];
        }
        foreach (var candidate in versions)
        {
            if (candidate.Version.Version == version)
            {
                return candidate;
            }
        }
        return null;
    }

    /// <summary>Every active version.</summary>
    public IEnumerable<ActiveModelVersion> All => Models.Values.SelectMany(v => v);
}

/// <summary>An in-memory view of the active models that follows the registry (pub/sub + periodic reconcile).</summary>
public interface IActiveModelsView
{
    /// <summary>The latest set read from the registry.</summary>
    ActiveModelSet Current { get; }

    /// <summary>Raised after <see cref="Current"/> was replaced by a set that differs from the previous one.</summary>
    event Action<ActiveModelSet>? Changed;

    /// <summary>Reads the registry now and publishes the result.</summary>
    Task<ActiveModelSet> RefreshAsync(CancellationToken cancellationToken = default);
}

/// <summary>Options of <see cref="ActiveModelsMonitor"/> (section <c>ModelRegistry</c>).</summary>
public sealed class ModelRegistryOptions
{
    /// <summary>Configuration section.</summary>
    public const string SectionName = "ModelRegistry";

    /// <summary>
    /// How often the registry is re-read regardless of notifications, so a lost pub/sub message (Redis restart, a
    /// subscriber reconnecting) leaves a service stale for at most this long.
    /// </summary>
    public TimeSpan ReconcileInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Retry delay while the registry tables do not exist yet (AdminApi migrates at start) or Postgres is down.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>
/// Keeps <see cref="IActiveModelsView.Current"/> in step with the registry: re-reads on every
/// <see cref="ModelRegistryNotifications"/> message and every <see cref="ModelRegistryOptions.ReconcileInterval"/>.
/// </summary>
public sealed partial class ActiveModelsMonitor(
    IModelRegistryReader reader,
    ModelRegistryNotifications notifications,
    IOptions<ModelRegistryOptions> options,
    TimeProvider timeProvider,
    ILogger<ActiveModelsMonitor> logger) : BackgroundService, IActiveModelsView
{
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly SemaphoreSlim _refreshLock = new(1, 1);
    private volatile ActiveModelSet _current = ActiveModelSet.Empty;

    /// <inheritdoc />
    public ActiveModelSet Current => _current;

    /// <inheritdoc />
    public event Action<ActiveModelSet>? Changed;

    /// <inheritdoc />
    public async Task<ActiveModelSet> RefreshAsync(CancellationToken cancellationToken = default)
    {
        await _refreshLock.WaitAsync(cancellationToken);
        try
        {
            var active = await reader.ListActiveAsync(cancellationToken);
            var next = new ActiveModelSet(
                active.GroupBy(a => a.Name, StringComparer.Ordinal)
                    .ToImmutableDictionary(g => g.Key, g => g.OrderBy(a => a.Version.Version).ToImmutableArray(), StringComparer.Ordinal),
                timeProvider.GetUtcNow());
            var previous = _current;
            _current = next;
            if (!SameContent(previous, next))
            {
                LogChanged(logger, next.Models.Count, next.All.Count());
                Changed?.Invoke(next);
            }
            return next;
        }
        finally
        {
            _refreshLock.Release();
        }
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _ = SubscribeWithRetryAsync(stoppingToken);
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            var delay = options.Value.ReconcileInterval;
            try
            {
                await RefreshAsync(stoppingToken);
                failures = 0;
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UndefinedTable)
            {
                // AdminApi has not applied its migrations yet: normal during a cold start.
                LogSchemaMissing(logger, ex.MessageText);
                delay = Backoff(++failures);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested && ex is NpgsqlException or TimeoutException or InvalidOperationException)
            {
                LogRefreshFailed(logger, ex.Message);
                delay = Backoff(++failures);
            }

            // Sleep until a notification or the reconcile timer (TimeProvider-driven), whichever comes first. A wake-up
            // consumed just as the timer fires is harmless: the loop refreshes either way.
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            var woken = _wake.WaitAsync(wait.Token);
            var timer = Task.Delay(delay, timeProvider, wait.Token);
            await Task.WhenAny(woken, timer);
            await wait.CancelAsync();
            await Task.WhenAll(woken, timer).ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        base.Dispose();
        _wake.Dispose();
        _refreshLock.Dispose();
    }

    /// <summary>RetryDelay doubling per consecutive failure, capped at the reconcile interval.</summary>
    private TimeSpan Backoff(int failures)
    {
        var settings = options.Value;
        var ticks = settings.RetryDelay.Ticks * Math.Pow(2, Math.Min(failures - 1, 16));
        return TimeSpan.FromTicks((long)Math.Min(ticks, Math.Max(settings.ReconcileInterval.Ticks, settings.RetryDelay.Ticks)));
    }

    private async Task SubscribeWithRetryAsync(CancellationToken stoppingToken)
    {
        var delay = options.Value.RetryDelay;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await notifications.SubscribeAsync(change =>
                {
                    LogNotified(logger, change.Kind, change.Model, change.Version);
                    Wake();
                }, stoppingToken);
                LogSubscribed(logger, ModelRegistryNotifications.Channel);
                // Something may have changed between the first read and the subscription taking effect.
                Wake();
                return;
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                LogSubscribeFailed(logger, ex.Message);
            }
            try
            {
                await Task.Delay(delay, timeProvider, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(10).Ticks));
        }
    }

    private void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // A wake-up is already pending; one refresh covers both.
        }
        catch (ObjectDisposedException)
        {
            // Shutting down.
        }
    }

    private static bool SameContent(ActiveModelSet a, ActiveModelSet b) =>
        a.Models.Count == b.Models.Count
        && a.All.Select(Identity).Order(StringComparer.Ordinal).SequenceEqual(b.All.Select(Identity).Order(StringComparer.Ordinal), StringComparer.Ordinal);

    private static string Identity(ActiveModelVersion v) =>
        $"{v.Name}/{v.Version.Version}/{v.Version.Sha256}/{v.Settings}/" +
        string.Join(';', v.Version.FeatureBindings.Select(b => $"{b.Input}={b.FeatureSet}:{(b.Default is null ? "-" : string.Join(',', b.Default))}"));

    [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "Active models changed: {Models} models, {Versions} versions")]
    private static partial void LogChanged(ILogger logger, int models, int versions);

    [LoggerMessage(EventId = 21, Level = LogLevel.Information, Message = "Registry tables do not exist yet, retrying: {Reason}")]
    private static partial void LogSchemaMissing(ILogger logger, string reason);

    [LoggerMessage(EventId = 22, Level = LogLevel.Warning, Message = "Reading the model registry failed, retrying: {Reason}")]
    private static partial void LogRefreshFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 23, Level = LogLevel.Debug, Message = "Registry change {Kind} of {Model} version {Version}")]
    private static partial void LogNotified(ILogger logger, string kind, string model, long? version);

    [LoggerMessage(EventId = 24, Level = LogLevel.Information, Message = "Subscribed to {Channel}")]
    private static partial void LogSubscribed(ILogger logger, string channel);

    [LoggerMessage(EventId = 25, Level = LogLevel.Warning, Message = "Subscribing to registry changes failed, retrying: {Reason}")]
    private static partial void LogSubscribeFailed(ILogger logger, string reason);
}
