using System.Globalization;
using StackExchange.Redis;

namespace Platform.InferenceApi.Serving;

/// <summary>Response-cache lookups of one model version, as Triton's statistics report them.</summary>
/// <param name="HitCount">Lookups that found an answer.</param>
/// <param name="HitNanoseconds">Their total duration.</param>
/// <param name="MissCount">Lookups that did not.</param>
/// <param name="MissNanoseconds">Their total duration.</param>
public sealed record CacheStatistics(ulong HitCount, ulong HitNanoseconds, ulong MissCount, ulong MissNanoseconds);

/// <summary>
/// The statistics only InferenceApi sees (the response cache lives here, not in the workers), kept in Redis so every
/// InferenceApi replica reports the same totals: one hash per model version, incremented without waiting for Redis.
/// Best effort like the cache itself: a lost increment while Redis is away is not worth failing or slowing a request.
/// </summary>
public sealed partial class InferenceStatisticsStore(IConnectionMultiplexer redis, ILogger<InferenceStatisticsStore> logger)
{
    /// <summary>Key prefix of the per-version hashes.</summary>
    public const string KeyPrefix = "platform:infer-stats:";

    /// <summary>Counts a cache lookup of <paramref name="model"/> <paramref name="version"/> that took <paramref name="elapsed"/>.</summary>
    public async ValueTask CacheLookupAsync(string model, long version, bool hit, TimeSpan elapsed, CancellationToken cancellationToken)
    {
        if (!redis.IsConnected)
        {
            return;
        }

        try
        {
            var database = redis.GetDatabase();
            var key = Key(model, version);
            var batch = database.CreateBatch();
            _ = batch.HashIncrementAsync(key, hit ? "cache_hit_count" : "cache_miss_count", 1, CommandFlags.FireAndForget);
            _ = batch.HashIncrementAsync(key, hit ? "cache_hit_ns" : "cache_miss_ns", (long)(elapsed.Ticks * 100), CommandFlags.FireAndForget);
            batch.Execute();
        }
        catch (Exception ex) when (ex is RedisException or ObjectDisposedException)
        {
            LogFailed(logger, model, version, ex.Message);
        }
    }

    /// <summary>The cache statistics of <paramref name="model"/> <paramref name="version"/>; zeros when none were counted or Redis is away.</summary>
    public async Task<CacheStatistics> GetAsync(string model, long version, CancellationToken cancellationToken)
    {
        try
        {
            var database = redis.GetDatabase();
            var fields = await database.HashGetAllAsync(Key(model, version)).WaitAsync(TimeSpan.FromSeconds(2), cancellationToken);
            var values = fields.ToDictionary(f => f.Name.ToString(), f => ulong.TryParse(f.Value.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : 0UL);
            return new CacheStatistics(values.GetValueOrDefault("cache_hit_count"), values.GetValueOrDefault("cache_hit_ns"),
                values.GetValueOrDefault("cache_miss_count"), values.GetValueOrDefault("cache_miss_ns"));
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogFailed(logger, model, version, ex.Message);
            return new CacheStatistics(0, 0, 0, 0);
        }
    }

    private static string Key(string model, long version) => string.Create(CultureInfo.InvariantCulture, $"{KeyPrefix}{model}:{version}");

    [LoggerMessage(EventId = 60, Level = LogLevel.Warning, Message = "Cache statistics of {Model} version {Version} not counted or read: {Reason}")]
    private static partial void LogFailed(ILogger logger, string model, long version, string reason);
}
