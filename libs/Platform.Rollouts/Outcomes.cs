namespace Platform.Rollouts;

/// <summary>The part a version plays in a rollout's request.</summary>
public static class RolloutRoles
{
    /// <summary>The stable version answered.</summary>
    public const string Stable = "stable";

    /// <summary>The candidate answered (canary).</summary>
    public const string Candidate = "candidate";

    /// <summary>The candidate ran a copy whose answer was compared and discarded (shadow).</summary>
    public const string Shadow = "shadow";

    /// <summary>Every role.</summary>
    public static IReadOnlyList<string> All { get; } = [Stable, Candidate, Shadow];
}

/// <summary>
/// Fixed latency buckets shared by every reporter and the controller, so histograms from any number of replicas and
/// seconds add up: bucket <c>i</c> holds latencies up to 0.1 ms × 1.15^i, the last one everything above ≈ 5 minutes.
/// A percentile read from them is the upper bound of its bucket: never below the true value, at most 15 % above it.
/// </summary>
public static class LatencyBuckets
{
    /// <summary>Number of buckets.</summary>
    public const int Count = 120;

    private const double FirstBoundMs = 0.1;
    private const double Growth = 1.15;

    private static readonly double[] Bounds = [.. Enumerable.Range(0, Count).Select(i => FirstBoundMs * Math.Pow(Growth, i))];

    /// <summary>The bucket a latency of <paramref name="milliseconds"/> falls in.</summary>
    public static int IndexOf(double milliseconds)
    {
        if (!(milliseconds > FirstBoundMs))
        {
            return 0;
        }

        var index = (int)Math.Ceiling(Math.Log(milliseconds / FirstBoundMs) / Math.Log(Growth));
        // Rounding in Log can put a value exactly on a bound one bucket too high or low.
        while (index > 0 && milliseconds <= Bounds[Math.Min(index - 1, Count - 1)])
        {
            index--;
        }

        while (index < Count - 1 && milliseconds > Bounds[index])
        {
            index++;
        }

        return Math.Min(index, Count - 1);
    }

    /// <summary>The largest latency bucket <paramref name="index"/> holds, in milliseconds.</summary>
    public static double UpperBoundMs(int index) => Bounds[Math.Clamp(index, 0, Count - 1)];
}

/// <summary>Counts of one role over some seconds: requests, 5xx, a latency histogram and, for shadow copies, output drift.</summary>
public sealed class OutcomeTotals
{
    private readonly long[] _latency = new long[LatencyBuckets.Count];

    /// <summary>Requests with an outcome (client cancellations are not counted).</summary>
    public long Requests { get; private set; }

    /// <summary>Requests answered with a 5xx.</summary>
    public long Errors { get; private set; }

    /// <summary>Shadow answers compared with the stable answer.</summary>
    public long DriftCount { get; private set; }

    /// <summary>Sum of the compared answers' largest absolute differences.</summary>
    public double DriftSum { get; private set; }

    /// <summary>Largest absolute difference seen.</summary>
    public double DriftMax { get; private set; }

    /// <summary>Shadow answers whose outputs differ in name, shape or datatype.</summary>
    public long Mismatches { get; private set; }

    /// <summary>Requests per latency bucket (<see cref="LatencyBuckets"/>).</summary>
    public IReadOnlyList<long> Latency => _latency;

    /// <summary>Whether nothing was counted.</summary>
    public bool IsEmpty => Requests == 0 && DriftCount == 0 && Mismatches == 0;

    /// <summary>Whether <paramref name="status"/> (HTTP terms) counts as an error of the version: any 5xx.</summary>
    public static bool IsError(int status) => status >= 500;

    /// <summary>Counts one request.</summary>
    public void AddRequest(int status, double latencyMs)
    {
        Requests++;
        if (IsError(status))
        {
            Errors++;
        }

        _latency[LatencyBuckets.IndexOf(latencyMs)]++;
    }

    /// <summary>Counts one comparison of a shadow answer with the stable one: its largest difference, or a mismatch.</summary>
    public void AddComparison(double? drift)
    {
        if (drift is not { } value)
        {
            Mismatches++;
            return;
        }

        DriftCount++;
        DriftSum += value;
        DriftMax = Math.Max(DriftMax, value);
    }

    /// <summary>Adds raw counts (as read back from Redis).</summary>
    public void Add(long requests, long errors, long driftCount, double driftSum, double driftMax, long mismatches)
    {
        Requests += requests;
        Errors += errors;
        DriftCount += driftCount;
        DriftSum += driftSum;
        DriftMax = Math.Max(DriftMax, driftMax);
        Mismatches += mismatches;
    }

    /// <summary>Adds <paramref name="count"/> requests to latency bucket <paramref name="bucket"/> (as read back from Redis).</summary>
    public void AddLatency(int bucket, long count) => _latency[Math.Clamp(bucket, 0, LatencyBuckets.Count - 1)] += count;

    /// <summary>Adds another total to this one.</summary>
    public void Add(OutcomeTotals other)
    {
        ArgumentNullException.ThrowIfNull(other);
        Add(other.Requests, other.Errors, other.DriftCount, other.DriftSum, other.DriftMax, other.Mismatches);
        for (var i = 0; i < _latency.Length; i++)
        {
            _latency[i] += other._latency[i];
        }
    }

    /// <summary>The latency under which <paramref name="quantile"/> of the requests fell (bucket upper bound); null without requests.</summary>
    public double? LatencyQuantileMs(double quantile)
    {
        var counted = _latency.Sum();
        if (counted == 0)
        {
            return null;
        }

        var rank = (long)Math.Ceiling(quantile * counted);
        long seen = 0;
        for (var i = 0; i < _latency.Length; i++)
        {
            seen += _latency[i];
            if (seen >= rank)
            {
                return LatencyBuckets.UpperBoundMs(i);
            }
        }

        return LatencyBuckets.UpperBoundMs(_latency.Length - 1);
    }

    /// <summary>The totals as judged and reported.</summary>
    public VersionObservation ToObservation() => new(
        Requests,
        Errors,
        Requests == 0 ? 0 : (double)Errors / Requests,
        LatencyQuantileMs(0.95),
        DriftCount == 0 ? null : DriftSum / DriftCount,
        DriftCount == 0 ? null : DriftMax,
        DriftCount,
        Mismatches);
}

/// <summary>A rollout's outcomes over a window, per role.</summary>
/// <param name="from">Start of the window.</param>
/// <param name="to">End of the window.</param>
public sealed class OutcomeWindow(DateTimeOffset from, DateTimeOffset to)
{
    /// <summary>Start of the window.</summary>
    public DateTimeOffset From { get; } = from;

    /// <summary>End of the window.</summary>
    public DateTimeOffset To { get; } = to;

    /// <summary>The stable version's requests.</summary>
    public OutcomeTotals Stable { get; } = new();

    /// <summary>The candidate's answered requests.</summary>
    public OutcomeTotals Candidate { get; } = new();

    /// <summary>The candidate's shadow copies.</summary>
    public OutcomeTotals Shadow { get; } = new();

    /// <summary>The totals of <paramref name="role"/>.</summary>
    public OutcomeTotals Of(string role) => role switch
    {
        RolloutRoles.Stable => Stable,
        RolloutRoles.Candidate => Candidate,
        RolloutRoles.Shadow => Shadow,
        _ => throw new ArgumentOutOfRangeException(nameof(role), role, "not a rollout role"),
    };

    /// <summary>The window as reported.</summary>
    public RolloutObservation ToObservation() => new(From, To, Stable.ToObservation(), Candidate.ToObservation(), Shadow.ToObservation());
}
