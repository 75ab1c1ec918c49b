using StackExchange.Redis;

namespace Platform.Tenancy;

/// <summary>The outcome of a rate-limit check.</summary>
/// <param name="Allowed">Whether the request may proceed.</param>
/// <param name="Remaining">Whole tokens left after this request.</param>
/// <param name="RetryAfter">When refused: how long until enough tokens exist.</param>
public sealed record RateLimitDecision(bool Allowed, long Remaining, TimeSpan RetryAfter);

/// <summary>
/// A token bucket per key held in Redis and updated by one Lua script, so every InferenceApi replica
/// draws from the same bucket atomically. Time comes from the Redis server (one clock for all replicas).
/// </summary>
public sealed class RedisTokenBucket(IConnectionMultiplexer redis)
{
    /// <summary>
    /// The bucket update, shared with the enforcement script in <see cref="Enforcement.UsageLedger"/>: KEYS[1] bucket;
    /// ARGV[1..3] capacity, refill tokens/s, cost. Leaves locals <c>allowed</c> (0/1), <c>tokens</c> and
    /// <c>retry_us</c>. State: tokens (float) and last refill (µs, Redis clock).
    /// </summary>
    internal const string TakeTokensLua = """
        local capacity = tonumber(ARGV[1])
        local rate = tonumber(ARGV[2])
        local cost = tonumber(ARGV[3])
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
        local tokens = tonumber(state[1])
        local ts = tonumber(state[2])
        if tokens == nil then
          tokens = capacity
          ts = now
        end
        tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate / 1000000)
        local allowed = 0
        local retry_us = 0
        if tokens >= cost then
          tokens = tokens - cost
          allowed = 1
        else
          retry_us = math.ceil((cost - tokens) * 1000000 / rate)
        end
        redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
        redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)

        """;

    private const string Script = TakeTokensLua + "return { allowed, math.floor(tokens), retry_us }";

    /// <summary>Takes <paramref name="cost"/> tokens from the bucket <paramref name="key"/> if it has them.</summary>
    public async Task<RateLimitDecision> TryAcquireAsync(string key, double capacity, double refillPerSecond, double cost = 1,
        CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(refillPerSecond);
        var db = redis.GetDatabase();
        var result = (RedisResult[])(await db.ScriptEvaluateAsync(Script, [(RedisKey)$"ratelimit:{key}"],
            [capacity, refillPerSecond, cost]))!;
        var allowed = (long)result[0] == 1;
        return new RateLimitDecision(allowed, (long)result[1], allowed ? TimeSpan.Zero : TimeSpan.FromTicks((long)result[2] * 10));
    }
}
