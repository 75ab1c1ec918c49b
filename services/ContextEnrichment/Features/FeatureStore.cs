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

/// <summary>Postgres is the source of truth; Redis is the online cache (read-through, invalidated on write).</summary>
public sealed class FeatureStore(NpgsqlDataSource db, IRedisConnection redis, IOptions<FeatureStoreOptions> options, TimeProvider time)
{
    /// <summary>Writes a vector, then drops the cached copy so no reader sees the old one after this returns.</summary>
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

        var cache = await redis.GetDatabaseAsync(cancellationToken);
        await cache.KeyDeleteAsync(CacheKey(featureSet, entityKey));
        return new FeatureVector(featureSet, entityKey, values, now, "database");
    }

    /// <summary>Reads a vector: the cache first, then Postgres (and fills the cache); null when absent.</summary>
    public async Task<FeatureVector?> GetAsync(string featureSet, string entityKey, CancellationToken cancellationToken)
    {
        var cache = await redis.GetDatabaseAsync(cancellationToken);
        var key = CacheKey(featureSet, entityKey);
        var cached = (byte[]?)await cache.StringGetAsync(key);
        if (cached is { Length: >= 8 })
        {
            var updated = DateTimeOffset.FromUnixTimeMilliseconds(BitConverter.ToInt64(cached, 0));
            return new FeatureVector(featureSet, entityKey, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(cached.AsSpan(8)).ToArray(), updated, "cache");
        }

        await using var cmd = db.CreateCommand("SELECT vals, updated_at FROM entity_features WHERE feature_set = $1 AND entity_key = $2");
        cmd.Parameters.AddWithValue(featureSet);
        cmd.Parameters.AddWithValue(entityKey);
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        var values = reader.GetFieldValue<float[]>(0);
        var updatedAt = reader.GetFieldValue<DateTimeOffset>(1);
        var payload = new byte[8 + (values.Length * sizeof(float))];
        BitConverter.TryWriteBytes(payload, updatedAt.ToUnixTimeMilliseconds());
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(payload.AsSpan(8));
        await cache.StringSetAsync(key, payload, options.Value.CacheTtl);
        return new FeatureVector(featureSet, entityKey, values, updatedAt, "database");
    }

    private static string CacheKey(string featureSet, string entityKey) => $"features:{featureSet}:{entityKey}";
}
