using System.Collections.Concurrent;

namespace Platform.Tenancy.Enforcement;

/// <summary>
/// One replica's leases of rate-limit tokens, per bucket. A key busy on this replica has an admission that goes to Redis
/// also take a few further tokens from the key's bucket (the script grants them only while the bucket keeps half its
/// burst); the key's next requests are admitted from them without a round trip. Tokens are taken from the shared bucket
/// before they are used, so replicas together never admit more than the bucket allows; what a lease still holds when it
/// expires is handed back (<see cref="TakeExpired"/>), so tokens sit unused for at most about two lease durations.
/// </summary>
internal sealed class AdmissionLeases(int maxTokens, TimeSpan duration, TimeProvider time)
{
    /// <summary>A lease never holds more than this share of a key's burst (1/64).</summary>
    public const int BurstShare = 64;

    private readonly ConcurrentDictionary<string, Lease> _leases = new(StringComparer.Ordinal);

    /// <summary>
    /// Admits one request of <paramref name="bucket"/> from this replica's lease. False when it must go to Redis; then
    /// <paramref name="lease"/> is how many further tokens that admission should ask for (0: none).
    /// </summary>
    /// <param name="bucket">The bucket's Redis key.</param>
    /// <param name="limit">The key's limit now.</param>
    /// <param name="remaining">When admitted: the bucket's tokens at the lease's grant plus what the lease still holds.</param>
    /// <param name="lease">When not admitted: tokens to lease along with the request's own.</param>
    public bool TryTake(string bucket, RateLimit limit, out long remaining, out int lease)
    {
        while (true)
        {
            var entry = _leases.GetOrAdd(bucket, static _ => new Lease());
            lock (entry)
            {
                if (entry.Removed)
                {
                    continue;
                }

                var now = time.GetTimestamp();
                entry.Count(now, duration, time);
                var size = Math.Min(Math.Min(maxTokens, limit.Burst / BurstShare), entry.PreviousWindow);
                var usable = entry.Tokens > 0 && entry.Limit == limit && now < entry.ExpiresAt;
                // Asking again at half (and letting the others use the rest meanwhile) keeps a busy key's lease from
                // running dry while the next one is on its way.
                if (size >= 2 && !entry.Requesting && (entry.Tokens == 0 || (usable && entry.Tokens <= size / 2)))
                {
                    entry.Requesting = true;
                    remaining = 0;
                    lease = size;
                    return false;
                }

                if (usable)
                {
                    entry.Tokens--;
                    remaining = entry.BucketTokens + entry.Tokens;
                    lease = 0;
                    return true;
                }

                remaining = 0;
                lease = 0;
                return false;
            }
        }
    }

    /// <summary>The admission that asked for a lease returned: <paramref name="granted"/> tokens (0 when the bucket could not spare them).</summary>
    public void Granted(string bucket, RateLimit limit, int granted, long bucketTokens)
    {
        if (!_leases.TryGetValue(bucket, out var entry))
        {
            return;
        }

        lock (entry)
        {
            entry.Requesting = false;
            if (granted <= 0 || entry.Removed)
            {
                return;
            }

            // A lease is asked for only when the entry is empty or holds tokens of this same limit (TryTake), so whatever
            // it still holds is added to, never replaced.
            entry.Tokens += granted;
            entry.Limit = limit;
            entry.BucketTokens = bucketTokens;
            entry.ExpiresAt = time.GetTimestamp() + (long)(duration.TotalSeconds * time.TimestampFrequency);
        }
    }

    /// <summary>The admission that asked for a lease failed: nothing was granted.</summary>
    public void Abandoned(string bucket)
    {
        if (_leases.TryGetValue(bucket, out var entry))
        {
            lock (entry)
            {
                entry.Requesting = false;
            }
        }
    }

    /// <summary>
    /// Takes what expired leases still hold, to hand back to their buckets, and forgets keys idle for a while. Tokens
    /// not handed back (Redis unreachable) are lost to the bucket until it refills; it never gains any.
    /// </summary>
    public List<(string Bucket, RateLimit Limit, int Tokens)> TakeExpired()
    {
        var expired = new List<(string, RateLimit, int)>();
        var now = time.GetTimestamp();
        foreach (var (bucket, entry) in _leases)
        {
            lock (entry)
            {
                if (entry.Tokens > 0 && now >= entry.ExpiresAt)
                {
                    expired.Add((bucket, entry.Limit!, entry.Tokens));
                    entry.Tokens = 0;
                }

                if (entry.Tokens == 0 && !entry.Requesting && time.GetElapsedTime(entry.WindowStart, now) > 4 * duration)
                {
                    entry.Removed = true;
                    _leases.TryRemove(new KeyValuePair<string, Lease>(bucket, entry));
                }
            }
        }

        return expired;
    }

    /// <summary>Drops every lease's tokens (Redis failed: nothing may be admitted that cannot be checked and recorded).</summary>
    public void Clear()
    {
        foreach (var entry in _leases.Values)
        {
            lock (entry)
            {
                entry.Tokens = 0;
            }
        }
    }

    private sealed class Lease
    {
        public int Tokens;
        public RateLimit? Limit;
        public long ExpiresAt;
        public long BucketTokens;
        public bool Requesting;
        public bool Removed;
        public bool Counting;
        public long WindowStart;
        public int CurrentWindow;
        public int PreviousWindow;

        // Admissions of the key on this replica in the last full lease duration: a lease is never larger, so a key
        // that is not busy here takes none (and a new key none before its first full window).
        public void Count(long now, TimeSpan duration, TimeProvider time)
        {
            var elapsed = time.GetElapsedTime(WindowStart, now);
            if (!Counting || elapsed >= duration)
            {
                PreviousWindow = Counting && elapsed < 2 * duration ? CurrentWindow : 0;
                Counting = true;
                WindowStart = now;
                CurrentWindow = 0;
            }

            CurrentWindow++;
        }
    }
}
