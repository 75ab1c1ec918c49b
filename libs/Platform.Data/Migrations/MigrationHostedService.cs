using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Platform.Data.Migrations;

/// <summary>Progress of the start-up migration, read by the <c>migrations</c> health check.</summary>
public sealed class MigrationState
{
    private volatile Snapshot _current = new(MigrationStatus.Pending, "migrations not applied yet");

    /// <summary>Current status and a human-readable description.</summary>
    public Snapshot Current => _current;

    internal void Set(MigrationStatus status, string description) => _current = new Snapshot(status, description);

    /// <summary>Immutable status reading.</summary>
    /// <param name="Status">Where the migration is.</param>
    /// <param name="Description">What happened last.</param>
    public sealed record Snapshot(MigrationStatus Status, string Description);
}

/// <summary>Where the start-up migration is.</summary>
public enum MigrationStatus
{
    /// <summary>Not applied yet (possibly retrying while the database is unreachable).</summary>
    Pending,

    /// <summary>The schema is current.</summary>
    Completed,

    /// <summary>A non-transient failure (edited or broken migration); needs a human.</summary>
    Failed,
}

/// <summary>
/// Runs the migrations when the host starts, retrying while PostgreSQL is unreachable (the AppHost may start it after us),
/// but not on script or checksum errors, which no retry fixes.
/// </summary>
internal sealed partial class MigrationHostedService(
    MigrationRunner runner,
    IMigrationSource source,
    MigrationState state,
    TimeProvider timeProvider,
    ILogger<MigrationHostedService> logger) : BackgroundService
{
    private static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(10);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var delay = TimeSpan.FromMilliseconds(250);
        for (var attempt = 1; !stoppingToken.IsCancellationRequested; attempt++)
        {
            try
            {
                var result = await runner.MigrateAsync(source, stoppingToken);
                state.Set(MigrationStatus.Completed, $"schema at version {result.CurrentVersion} ({result.Applied.Count} applied at start)");
                return;
            }
            catch (MigrationException ex)
            {
                state.Set(MigrationStatus.Failed, ex.Message);
                LogFailed(logger, ex);
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException && !stoppingToken.IsCancellationRequested)
            {
                state.Set(MigrationStatus.Pending, $"database unreachable (attempt {attempt}): {ex.Message}");
                LogRetrying(logger, attempt, delay.TotalMilliseconds, ex.Message);
            }

            await Task.Delay(delay, timeProvider, stoppingToken);
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxDelay.Ticks));
        }
    }

    [LoggerMessage(EventId = 10, Level = LogLevel.Critical, Message = "Schema migration failed; the service will stay unready")]
    private static partial void LogFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 11, Level = LogLevel.Warning, Message = "Schema migration attempt {Attempt} could not reach PostgreSQL, retrying in {DelayMs} ms: {Reason}")]
    private static partial void LogRetrying(ILogger logger, int attempt, double delayMs, string reason);
}

/// <summary>Unhealthy until the start-up migration completed: the service is not ready on an old schema.</summary>
internal sealed class MigrationHealthCheck(MigrationState state) : IHealthCheck
{
    public const string Name = "migrations";

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var snapshot = state.Current;
        return Task.FromResult(snapshot.Status == MigrationStatus.Completed
            ? HealthCheckResult.Healthy(snapshot.Description)
            : new HealthCheckResult(context.Registration.FailureStatus, $"{snapshot.Status}: {snapshot.Description}"));
    }
}
