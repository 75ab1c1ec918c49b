using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Platform.Redis;
using StackExchange.Redis;

namespace Platform.Tenancy;

/// <summary>One inference, successful or not, as charged to a tenant.</summary>
public sealed record UsageRecord(
    Guid Id,
    Guid TenantId,
    Guid? KeyId,
    string Model,
    long Version,
    int Status,
    double LatencyMs,
    int BatchSize,
    decimal Cost,
    string Currency,
    string? TraceId,
    DateTimeOffset OccurredAt);

/// <summary>
/// The durable buffer between answering a request and recording it: records go to a Redis list
/// (AOF-persisted) before the response is sent, so a killed InferenceApi loses none; a writer moves
/// them to Postgres. The reliable-queue pattern (RPOPLPUSH into a processing list, removed only after
/// the insert committed) plus an idempotent insert means a crashed writer or a restarting Postgres
/// leads to retries, never to loss or double counting.
/// </summary>
public sealed class UsageBuffer(IRedisConnection redis)
{
    /// <summary>Redis list of records waiting to be written.</summary>
    public const string PendingKey = "usage:pending";

    /// <summary>Redis list of records a writer has taken but not yet committed.</summary>
    public const string ProcessingKey = "usage:processing";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Appends a record; returns once Redis has it.</summary>
    public async Task AppendAsync(UsageRecord record, CancellationToken cancellationToken = default)
    {
        var db = await redis.GetDatabaseAsync(cancellationToken);
        await db.ListLeftPushAsync(PendingKey, JsonSerializer.Serialize(record, Json));
    }

    /// <summary>Records waiting (pending + in processing).</summary>
    public async Task<long> BacklogAsync(CancellationToken cancellationToken = default)
    {
        var db = await redis.GetDatabaseAsync(cancellationToken);
        return await db.ListLengthAsync(PendingKey) + await db.ListLengthAsync(ProcessingKey);
    }

    internal static UsageRecord Parse(string json) => JsonSerializer.Deserialize<UsageRecord>(json, Json)
        ?? throw new FormatException("Empty usage record.");
}

/// <summary>Moves usage records from the Redis buffer into <c>usage_records</c>.</summary>
public sealed partial class UsageWriter(IRedisConnection redis, NpgsqlDataSource db, TimeProvider time, ILogger<UsageWriter> logger) : BackgroundService
{
    /// <summary>Most records written per transaction.</summary>
    public const int BatchSize = 500;

    /// <summary>Writes everything buffered now; returns how many records were committed.</summary>
    public async Task<int> DrainOnceAsync(CancellationToken cancellationToken)
    {
        var cache = await redis.GetDatabaseAsync(cancellationToken);
        var taken = new List<RedisValue>();
        // Anything left in processing belongs to a writer that died mid-batch: write it again (idempotent).
        taken.AddRange(await cache.ListRangeAsync(UsageBuffer.ProcessingKey));
        while (taken.Count < BatchSize)
        {
            var item = await cache.ListRightPopLeftPushAsync(UsageBuffer.PendingKey, UsageBuffer.ProcessingKey);
            if (item.IsNull)
            {
                break;
            }

            taken.Add(item);
        }

        if (taken.Count == 0)
        {
            return 0;
        }

        await using (var connection = await db.OpenConnectionAsync(cancellationToken))
        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken))
        {
            foreach (var raw in taken)
            {
                var r = UsageBuffer.Parse(raw!);
                await using var insert = new NpgsqlCommand(
                    "INSERT INTO usage_records (id, tenant_id, key_id, model, version, status, latency_ms, batch_size, cost, currency, trace_id, occurred_at) " +
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING", connection, transaction);
                insert.Parameters.AddWithValue(r.Id);
                insert.Parameters.AddWithValue(r.TenantId);
                insert.Parameters.AddWithValue((object?)r.KeyId ?? DBNull.Value);
                insert.Parameters.AddWithValue(r.Model);
                insert.Parameters.AddWithValue(r.Version);
                insert.Parameters.AddWithValue(r.Status);
                insert.Parameters.AddWithValue(r.LatencyMs);
                insert.Parameters.AddWithValue(r.BatchSize);
                insert.Parameters.AddWithValue(r.Cost);
                insert.Parameters.AddWithValue(r.Currency);
                insert.Parameters.AddWithValue((object?)r.TraceId ?? DBNull.Value);
                insert.Parameters.AddWithValue(r.OccurredAt);
                await insert.ExecuteNonQueryAsync(cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        // Committed: only now may the records leave Redis.
        foreach (var raw in taken)
        {
            await cache.ListRemoveAsync(UsageBuffer.ProcessingKey, raw, 1);
        }

        return taken.Count;
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var delay = TimeSpan.FromMilliseconds(200);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var written = await DrainOnceAsync(stoppingToken);
                delay = written >= BatchSize ? TimeSpan.Zero : TimeSpan.FromMilliseconds(200);
            }
            catch (Exception ex) when (ex is NpgsqlException or RedisException or TimeoutException && !stoppingToken.IsCancellationRequested)
            {
                // Postgres or Redis restarting: the records stay buffered; try again shortly.
                LogRetry(logger, ex.Message);
                delay = TimeSpan.FromSeconds(1);
            }

            if (delay > TimeSpan.Zero)
            {
                await Task.Delay(delay, time, stoppingToken);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Usage records stay buffered in Redis; writing them failed: {Reason}")]
    private static partial void LogRetry(ILogger logger, string reason);
}
