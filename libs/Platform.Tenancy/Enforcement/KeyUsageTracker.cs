using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Platform.Tenancy.Enforcement;

/// <summary>
/// Keeps <c>api_keys.last_used_at</c> current without a write per request: the request path notes the time in memory,
/// and every <see cref="TenantDirectoryOptions.LastUsedFlushInterval"/> one statement updates all keys seen since.
/// </summary>
public sealed partial class KeyUsageTracker(NpgsqlDataSource db, TimeProvider time, IOptions<TenantDirectoryOptions> options, ILogger<KeyUsageTracker> logger)
    : BackgroundService
{
    private ConcurrentDictionary<Guid, DateTimeOffset> _seen = new();

    /// <summary>Notes that <paramref name="keyId"/> authenticated a request now.</summary>
    public void Seen(Guid keyId) => _seen[keyId] = time.GetUtcNow();

    /// <summary>Writes the keys seen since the last flush; returns how many.</summary>
    public async Task<int> FlushAsync(CancellationToken cancellationToken)
    {
        var batch = Interlocked.Exchange(ref _seen, new ConcurrentDictionary<Guid, DateTimeOffset>());
        if (batch.IsEmpty)
        {
            return 0;
        }

        try
        {
            await using var update = db.CreateCommand(
                "UPDATE api_keys k SET last_used_at = greatest(coalesce(k.last_used_at, v.t), v.t) " +
                "FROM unnest($1::uuid[], $2::timestamptz[]) AS v(id, t) WHERE k.id = v.id");
            update.Parameters.AddWithValue(batch.Keys.ToArray());
            update.Parameters.AddWithValue(batch.Values.ToArray());
            await update.ExecuteNonQueryAsync(cancellationToken);
            return batch.Count;
        }
        catch (Exception) when (!cancellationToken.IsCancellationRequested)
        {
            // Keep what was not written for the next round (newer sightings win).
            foreach (var (key, at) in batch)
            {
                _seen.AddOrUpdate(key, at, (_, newer) => newer > at ? newer : at);
            }

            throw;
        }
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(options.Value.LastUsedFlushInterval, time, stoppingToken);
                await FlushAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is NpgsqlException or TimeoutException && !stoppingToken.IsCancellationRequested)
            {
                LogFlushFailed(logger, ex.Message);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
        }

        // Stopping: one last write so a graceful shutdown loses no sighting.
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await FlushAsync(timeout.Token);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException or OperationCanceledException)
        {
            LogFlushFailed(logger, ex.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Updating api_keys.last_used_at failed; retrying next round: {Reason}")]
    private static partial void LogFlushFailed(ILogger logger, string reason);
}
