using System.Runtime.InteropServices;
using Microsoft.Extensions.Options;
using Npgsql;
using Platform.Redis;
using StackExchange.Redis;

namespace Platform.ContextEnrichment.Features;

/// <summary>A feature vector of one entity in one feature set.</summary>
/// <param name="FeatureSet">Feature set name.</param>
/// <param name="EntityKey">Entity key (customer id, item id...).</param>
/// <param name="Values">The features.</param>
/// <param name="UpdatedAt">When the vector was last written.</param>
/// <param name="Source">"cache" or "database": where this read was served from.</param>
public sealed record FeatureVector(string FeatureSet, string EntityKey, float[] Values, DateTimeOffset UpdatedAt, string Source);

/// <summary>Feature store settings (section <c>Features</c>).</summary>
public sealed class FeatureStoreOptions
{
    /// <summary>How long a vector stays in the Redis cache after it was read or written.</summary>
    public TimeSpan CacheTtl { get; set; } = TimeSpan.FromMinutes(10);
}

/// <summary>
/// Postgres is the source of truth; Redis is the online cache (read-through, written through on write). Cache entries
/// carry the row's updated-at and are only ever replaced by a newer one, so a slow reader cannot re-cache a stale vector.
/// </summary>
public sealed partial class FeatureStore(
    NpgsqlDataSource db, IConnectionMultiplexer redis, IOptions<FeatureStoreOptions> options, TimeProvider time, ILogger<FeatureStore> logger)
{
    /// <summary>Writes a vector, then caches it, so no reader sees the old one after this returns.</summary>
    public async Task<FeatureVector> PutAsync(string featureSet, string entityKey, float[] values, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await using (var cmd = db.CreateCommand(
            "INSERT INTO entity_features (feature_set, entity_key, vals, updated_at) VALUES ($1, $2, $3, $4) " +
            "ON CONFLICT (feature_set, entity_key) DO UPDATE SET vals = EXCLUDED.vals, updated_at = EXCLUDED.updated_at"))
        {
            cmd.Parameters.AddWithValue(featureSet);
            cmd.Parameters.AddWithValue(entityKey);
            cmd.Parameters.AddWithValue(values);
            cmd.Parameters.AddWithValue(now);
            await cmd.ExecuteNonQueryAsync(cancellationToken);
        }

        // Write-through with the version check: a reader that read the old row before this commit and fills the cache
        // after it cannot put the old vector back (its fill is older and is refused).
        var vector = new FeatureVector(featureSet, entityKey, values, now, "database");
        var cache = redis.GetDatabase();
        await SetIfNewerAsync(cache, CacheKey(featureSet, entityKey), Serialize(vector), write: true);
        return vector;
    }

    /// <summary>Reads a vector: the cache first, then Postgres (and fills the cache); null when absent.</summary>
    public async Task<FeatureVector?> GetAsync(string featureSet, string entityKey, CancellationToken cancellationToken) =>
        (await GetManyAsync(entityKey, [featureSet], cancellationToken)).FirstOrDefault();

    /// <summary>
    /// Reads one entity's vectors in several feature sets with one Redis round trip (MGET) and, for the sets the cache
    /// lacks, one Postgres query; fills the cache with what Postgres had. Sets the entity has no vector in are left out.
    /// InferenceApi's feature bindings read through this, so an inference needs one call whatever the number of sets.
    /// A Redis failure is logged and read as a miss: the cache must not make features unavailable.
    /// </summary>
    public async Task<IReadOnlyList<FeatureVector>> GetManyAsync(string entityKey, IReadOnlyList<string> featureSets, CancellationToken cancellationToken)
    {
        var found = new FeatureVector?[featureSets.Count];
        var keys = featureSets.Select(set => (RedisKey)CacheKey(set, entityKey)).ToArray();
        IDatabase? cache = null;
        try
        {
            cache = redis.GetDatabase();
            var cached = await RedisSpans.TraceAsync("MGET", "features.lookup", 1, () => cache.StringGetAsync(keys).WaitAsync(cancellationToken));
            for (var i = 0; i < cached.Length; i++)
            {
                if ((byte[]?)cached[i] is { Length: >= 8 } payload)
                {
                    var updated = DateTimeOffset.FromUnixTimeMilliseconds(BitConverter.ToInt64(payload, 0));
                    found[i] = new FeatureVector(featureSets[i], entityKey, MemoryMarshal.Cast<byte, float>(payload.AsSpan(8)).ToArray(), updated, "cache");
                }
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogCacheFailed(logger, "read", ex.Message);
            cache = null;
        }

        var misses = Enumerable.Range(0, featureSets.Count).Where(i => found[i] is null).ToList();
        if (misses.Count > 0)
        {
            await using var cmd = db.CreateCommand(
                "SELECT feature_set, vals, updated_at FROM entity_features WHERE entity_key = $1 AND feature_set = ANY($2)");
            cmd.Parameters.AddWithValue(entityKey);
            cmd.Parameters.AddWithValue(misses.Select(i => featureSets[i]).ToArray());
            var fromDatabase = new Dictionary<string, FeatureVector>(StringComparer.Ordinal);
            await using (var reader = await cmd.ExecuteReaderAsync(cancellationToken))
            {
                while (await reader.ReadAsync(cancellationToken))
                {
                    var set = reader.GetString(0);
                    fromDatabase[set] = new FeatureVector(set, entityKey, reader.GetFieldValue<float[]>(1), reader.GetFieldValue<DateTimeOffset>(2), "database");
                }
            }

            var fills = new List<KeyValuePair<RedisKey, RedisValue>>();
            foreach (var i in misses)
            {
                if (fromDatabase.TryGetValue(featureSets[i], out var vector))
                {
                    found[i] = vector;
                    fills.Add(new(keys[i], Serialize(vector)));
                }
            }

            if (cache is not null && fills.Count > 0)
            {
                try
                {
                    await Task.WhenAll(fills.Select(f => SetIfNewerAsync(cache, f.Key, f.Value, write: false))).WaitAsync(cancellationToken);
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException)
                {
                    LogCacheFailed(logger, "fill", ex.Message);
                }
            }
        }

        return [.. found.OfType<FeatureVector>()];
    }

    // KEYS[1] cache key; ARGV: payload (8-byte little-endian updated-at ms, then the floats), TTL ms, mode. Sets the
    // payload unless the cached one is newer (or, for a read fill, as new): versions only move forward.
    private const string SetIfNewerScript = """
        local function stamp(s)
          local v = 0
          for i = 8, 1, -1 do v = v * 256 + string.byte(s, i) end
          return v
        end
        local current = redis.call('GET', KEYS[1])
        if current and #current >= 8 then
          local old = stamp(current)
          local new = stamp(ARGV[1])
          if new < old or (new == old and ARGV[3] == 'fill') then return 0 end
        end
        redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        return 1
        """;

    private Task SetIfNewerAsync(IDatabase cache, RedisKey key, RedisValue payload, bool write) =>
        RedisSpans.TraceAsync("EVALSHA", write ? "features.write" : "features.fill", 1,
            () => cache.ScriptEvaluateAsync(SetIfNewerScript, [key], [payload, (long)options.Value.CacheTtl.TotalMilliseconds, write ? "write" : "fill"]));

    private static byte[] Serialize(FeatureVector vector)
    {
        var payload = new byte[8 + (vector.Values.Length * sizeof(float))];
        BitConverter.TryWriteBytes(payload, vector.UpdatedAt.ToUnixTimeMilliseconds());
        MemoryMarshal.AsBytes(vector.Values.AsSpan()).CopyTo(payload.AsSpan(8));
        return payload;
    }

    [LoggerMessage(EventId = 30, Level = LogLevel.Warning, Message = "Feature cache {Operation} failed, reading Postgres instead: {Reason}")]
    private static partial void LogCacheFailed(ILogger logger, string operation, string reason);

    private static string CacheKey(string featureSet, string entityKey) => $"features:{featureSet}:{entityKey}";
}
