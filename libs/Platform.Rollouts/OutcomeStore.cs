using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Platform.Rollouts;

/// <summary>Redis keys and channels of rollouts.</summary>
public static class RolloutKeys
{
    /// <summary>Pub/sub channel of rollout changes (the model name of the rollout that changed).</summary>
    public const string Channel = "platform:rollouts:changes";

    /// <summary>The lease that makes one AdminApi replica the controller.</summary>
    public const string ControllerLease = "platform:rollouts:controller";

    /// <summary>
    /// Most buckets a window is split into: a rollout's outcomes are kept in buckets of <see cref="BucketSize"/>, so a
    /// judgement reads at most this many hashes whatever the window.
    /// </summary>
    public const int BucketsPerWindow = 120;

    /// <summary>Length of the outcome buckets of a rollout with <paramref name="window"/>: one second, or window / 120 for long windows.</summary>
    public static TimeSpan BucketSize(TimeSpan window) =>
        TimeSpan.FromSeconds(Math.Max(1, (long)Math.Ceiling(window.TotalSeconds / BucketsPerWindow)));

    /// <summary>The hash holding rollout <paramref name="rolloutId"/>'s outcomes of bucket <paramref name="index"/> (buckets of <paramref name="bucketSeconds"/>).</summary>
    public static string Outcomes(Guid rolloutId, long bucketSeconds, long index) =>
        string.Create(CultureInfo.InvariantCulture, $"platform:rollouts:{rolloutId:N}:outcomes:{bucketSeconds}:{index}");
}

/// <summary>
/// Counts the outcomes of a rollout's requests in this process (InferenceApi) per rollout, bucket and role, and adds them to
/// Redis hashes every report interval (<see cref="FlushAsync"/>), where every replica's counts add up for the
/// controller. Recording is a dictionary lookup and a few additions under a per-bucket lock: nothing on the request path
/// waits for Redis.
/// </summary>
public sealed partial class RolloutOutcomeRecorder(IConnectionMultiplexer redis, TimeProvider timeProvider, ILogger<RolloutOutcomeRecorder> logger)
{
    // Adds each (op, field, value) triple of ARGV (after the TTL) to the hash: 'i' HINCRBY, 'f' HINCRBYFLOAT, 'm' max.
    private const string AddScript = """
        for i = 2, #ARGV, 3 do
          local op, field, value = ARGV[i], ARGV[i + 1], ARGV[i + 2]
          if op == 'i' then
            redis.call('HINCRBY', KEYS[1], field, value)
          elseif op == 'f' then
            redis.call('HINCRBYFLOAT', KEYS[1], field, value)
          else
            local current = redis.call('HGET', KEYS[1], field)
            if not current or tonumber(value) > tonumber(current) then
              redis.call('HSET', KEYS[1], field, value)
            end
          end
        end
        redis.call('EXPIRE', KEYS[1], ARGV[1])
        return 1
        """;

    private readonly ConcurrentDictionary<BucketKey, Bucket> _pending = new();

    /// <summary>Buckets waiting to be written.</summary>
    public int Pending => _pending.Count;

    /// <summary>Counts one request the rollout routed to <paramref name="role"/> (stable or candidate).</summary>
    /// <param name="rollout">The rollout in effect.</param>
    /// <param name="role">A <see cref="RolloutRoles"/> value.</param>
    /// <param name="status">The answer's status in HTTP terms; 499 (client went away) is not counted.</param>
    /// <param name="latency">From routing to the answer.</param>
    public void Record(Rollout rollout, string role, int status, TimeSpan latency)
    {
        ArgumentNullException.ThrowIfNull(rollout);
        if (status == 499)
        {
            return;
        }

        var bucket = BucketFor(rollout, role);
        lock (bucket)
        {
            bucket.Totals.AddRequest(status, latency.TotalMilliseconds);
        }
    }

    /// <summary>Counts one shadow copy: its status and latency and, when it answered, the comparison with the stable answer.</summary>
    /// <param name="rollout">The rollout in effect.</param>
    /// <param name="status">The copy's outcome in HTTP terms.</param>
    /// <param name="latency">The copy's worker round trip.</param>
    /// <param name="compared">Whether it answered and was compared.</param>
    /// <param name="drift">Its largest absolute output difference; null when the outputs did not match in name, shape or datatype.</param>
    public void RecordShadow(Rollout rollout, int status, TimeSpan latency, bool compared, double? drift)
    {
        ArgumentNullException.ThrowIfNull(rollout);
        var bucket = BucketFor(rollout, RolloutRoles.Shadow);
        lock (bucket)
        {
            bucket.Totals.AddRequest(status, latency.TotalMilliseconds);
            if (compared)
            {
                bucket.Totals.AddComparison(drift);
            }
        }
    }

    /// <summary>Adds everything counted so far to Redis; on failure the counts stay for the next attempt.</summary>
    /// <returns>The number of buckets written.</returns>
    public async Task<int> FlushAsync(CancellationToken cancellationToken)
    {
        var written = 0;
        var database = redis.GetDatabase();
        foreach (var key in _pending.Keys.ToArray())
        {
            if (!_pending.TryRemove(key, out var bucket))
            {
                continue;
            }

            OutcomeTotals totals;
            lock (bucket)
            {
                // A request that looked the bucket up just before its removal adds to this instance: closing it under the
                // lock makes such a request start a new one instead of being lost.
                bucket.Closed = true;
                totals = bucket.Totals;
            }

            if (totals.IsEmpty)
            {
                continue;
            }

            try
            {
                await database.ScriptEvaluateAsync(AddScript, [(RedisKey)key.RedisKey], Arguments(key.Role, totals, bucket.Ttl)).WaitAsync(cancellationToken);
                written++;
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                LogFlushFailed(logger, key.RolloutId, ex.Message);
                var back = _pending.GetOrAdd(key, static (_, ttl) => new Bucket(ttl), bucket.Ttl);
                lock (back)
                {
                    back.Totals.Add(totals);
                }

                break;
            }
        }

        return written;
    }

    private Bucket BucketFor(Rollout rollout, string role)
    {
        var size = RolloutKeys.BucketSize(rollout.Window);
        var index = timeProvider.GetUtcNow().ToUnixTimeSeconds() / (long)size.TotalSeconds;
        var key = new BucketKey(rollout.Id, role, RolloutKeys.Outcomes(rollout.Id, (long)size.TotalSeconds, index));
        // Kept for two windows (at least ten minutes): the controller reads one window back.
        var ttl = TimeSpan.FromTicks(Math.Max(TimeSpan.FromMinutes(10).Ticks, rollout.Window.Ticks * 2));
        while (true)
        {
            var bucket = _pending.GetOrAdd(key, static (_, t) => new Bucket(t), ttl);
            lock (bucket)
            {
                if (!bucket.Closed)
                {
                    return bucket;
                }
            }

            // Removed by a flush just now: the next lookup makes a fresh bucket for this request.
        }
    }

    private static RedisValue[] Arguments(string role, OutcomeTotals totals, TimeSpan ttl)
    {
        var args = new List<RedisValue> { (long)Math.Ceiling(ttl.TotalSeconds) };
        void Add(string op, string field, RedisValue value)
        {
            args.Add(op);
            args.Add($"{role}:{field}");
            args.Add(value);
        }

        Add("i", "n", totals.Requests);
        Add("i", "e", totals.Errors);
        for (var i = 0; i < totals.Latency.Count; i++)
        {
            if (totals.Latency[i] > 0)
            {
                Add("i", string.Create(CultureInfo.InvariantCulture, $"l{i}"), totals.Latency[i]);
            }
        }

        if (totals.DriftCount > 0)
        {
            Add("i", "dn", totals.DriftCount);
            Add("f", "ds", totals.DriftSum.ToString("R", CultureInfo.InvariantCulture));
            Add("m", "dm", totals.DriftMax.ToString("R", CultureInfo.InvariantCulture));
        }

        if (totals.Mismatches > 0)
        {
            Add("i", "mm", totals.Mismatches);
        }

        return [.. args];
    }

    [LoggerMessage(EventId = 30, Level = LogLevel.Warning, Message = "Could not report outcomes of rollout {RolloutId} to Redis; retrying at the next interval: {Reason}")]
    private static partial void LogFlushFailed(ILogger logger, Guid rolloutId, string reason);

    private readonly record struct BucketKey(Guid RolloutId, string Role, string RedisKey);

    private sealed class Bucket(TimeSpan ttl)
    {
        public TimeSpan Ttl { get; } = ttl;

        public OutcomeTotals Totals { get; } = new();

        public bool Closed { get; set; }
    }
}

/// <summary>Reads a rollout's outcomes over a window back from Redis, summed over every reporting replica.</summary>
public sealed class RolloutOutcomeReader(IConnectionMultiplexer redis)
{
    /// <summary>The outcomes of <paramref name="rollout"/> in the buckets overlapping [<paramref name="from"/>, <paramref name="to"/>].</summary>
    /// <exception cref="RedisException">Redis cannot be read.</exception>
    public async Task<OutcomeWindow> ReadAsync(Rollout rollout, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(rollout);
        var size = (long)RolloutKeys.BucketSize(rollout.Window).TotalSeconds;
        var first = from.ToUnixTimeSeconds() / size;
        var last = to.ToUnixTimeSeconds() / size;
        var window = new OutcomeWindow(from, to);
        if (last < first)
        {
            return window;
        }

        var database = redis.GetDatabase();
        var batch = database.CreateBatch();
        var reads = new List<Task<HashEntry[]>>();
        for (var index = first; index <= last; index++)
        {
            reads.Add(batch.HashGetAllAsync(RolloutKeys.Outcomes(rollout.Id, size, index)));
        }

        batch.Execute();
        foreach (var entries in await Task.WhenAll(reads).WaitAsync(cancellationToken))
        {
            Add(window, entries);
        }

        return window;
    }

    private static void Add(OutcomeWindow window, HashEntry[] entries)
    {
        foreach (var role in RolloutRoles.All)
        {
            var prefix = role + ":";
            long requests = 0, errors = 0, driftCount = 0, mismatches = 0;
            double driftSum = 0, driftMax = 0;
            var totals = window.Of(role);
            foreach (var entry in entries)
            {
                var name = (string)entry.Name!;
                if (!name.StartsWith(prefix, StringComparison.Ordinal))
                {
                    continue;
                }

                var field = name[prefix.Length..];
                switch (field)
                {
                    case "n": requests = (long)entry.Value; break;
                    case "e": errors = (long)entry.Value; break;
                    case "dn": driftCount = (long)entry.Value; break;
                    case "ds": driftSum = double.Parse((string)entry.Value!, CultureInfo.InvariantCulture); break;
                    case "dm": driftMax = double.Parse((string)entry.Value!, CultureInfo.InvariantCulture); break;
                    case "mm": mismatches = (long)entry.Value; break;
                    default:
                        if (field.StartsWith('l') && int.TryParse(field.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out var bucket))
                        {
                            totals.AddLatency(bucket, (long)entry.Value);
                        }

                        break;
                }
            }

            totals.Add(requests, errors, driftCount, driftSum, driftMax, mismatches);
        }
    }
}
