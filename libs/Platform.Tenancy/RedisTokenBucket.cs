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
    /// The bucket update as Lua functions, shared with the enforcement scripts in <see cref="Enforcement.UsageLedger"/>:
    /// <c>take(key, capacity, refill_per_s, cost, now_us)</c> returns <c>allowed</c> (0/1), <c>tokens</c> left and
    /// <c>retry_us</c>. State: tokens (float) and last refill (µs, Redis clock: one clock for every replica). A script that
    /// takes for many requests loads a bucket once (<c>load_bucket</c>), takes from it in memory per request
    /// (<c>take_from</c>) and stores it once (<c>save_bucket</c>): the same decisions as one <c>take</c> per request,
    /// since the state kept between takes is exactly what a store and a load would give back.
    /// </summary>
    internal const string TakeTokensLua = """
        local function load_bucket(key)
          local state = redis.call('HMGET', key, 'tokens', 'ts')
          return { tokens = tonumber(state[1]), ts = tonumber(state[2]) }
        end

        local function take_from(bucket, capacity, rate, cost, now)
          local tokens = bucket.tokens
          local ts = bucket.ts
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
          -- As stored (tostring keeps 14 digits), so the next take from memory sees what it would read back.
          bucket.tokens = tonumber(tostring(tokens))
          bucket.ts = tonumber(tostring(now))
          bucket.capacity = capacity
          bucket.rate = rate
          return allowed, tokens, retry_us
        end

        local function save_bucket(key, bucket)
          redis.call('HSET', key, 'tokens', tostring(bucket.tokens), 'ts', tostring(bucket.ts))
          redis.call('PEXPIRE', key, math.ceil(bucket.capacity / bucket.rate * 1000) + 1000)
        end

        local function take(key, capacity, rate, cost, now)
          local bucket = load_bucket(key)
          local allowed, tokens, retry_us = take_from(bucket, capacity, rate, cost, now)
          save_bucket(key, bucket)
          return allowed, tokens, retry_us
        end

        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])

        """;

    // KEYS[1] bucket; ARGV capacity, refill/s, cost.
    private const string Script = TakeTokensLua + """
        local allowed, tokens, retry_us = take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), now)
        return { allowed, math.floor(tokens), retry_us }
        """;

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
