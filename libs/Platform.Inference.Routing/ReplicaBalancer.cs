using System.Collections.Concurrent;

namespace Platform.Inference.Routing;

/// <summary>
/// Least-outstanding-requests selection across worker replicas. A replica that failed to answer (connection refused
/// or reset) sits out a cool-down so the requests after it do not trip over the same dead address; when every
/// candidate is cooling down the least loaded one is tried anyway rather than failing without trying.
/// </summary>
/// <remarks>
/// With <paramref name="packBelow"/> above 0, requests are packed instead of spread while load is light: the first
/// healthy candidate (in the order service discovery lists them) with fewer than that many requests in flight takes the
/// request, and only beyond it does least-outstanding apply. Replicas that share cores gain from this: one replica's
/// batches grow larger and only its copy of the weights has to stay in the CPU caches.
/// </remarks>
public sealed class ReplicaBalancer(TimeProvider timeProvider, TimeSpan failureCooldown, int packBelow = 0)
{
    private readonly ConcurrentDictionary<Uri, ReplicaState> _replicas = new();
    private int _rotation;

    /// <summary>Takes the least busy replica of <paramref name="candidates"/> not in <paramref name="exclude"/>; null when none is left.</summary>
    /// <remarks>Ties rotate, so an idle system spreads requests instead of always picking the first replica.</remarks>
    public ReplicaLease? Acquire(IReadOnlyList<Uri> candidates, IReadOnlyCollection<Uri>? exclude = null)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        var count = candidates.Count;
        if (count == 0)
        {
            return null;
        }

        var now = timeProvider.GetTimestamp();
        if (packBelow > 0)
        {
            for (var i = 0; i < count; i++)
            {
                var uri = candidates[i];
                if (exclude is not null && exclude.Contains(uri))
                {
                    continue;
                }

                var state = _replicas.GetOrAdd(uri, static u => new ReplicaState(u));
                if (Volatile.Read(ref state.CooldownUntil) <= now && Volatile.Read(ref state.Outstanding) < packBelow)
                {
                    Interlocked.Increment(ref state.Outstanding);
                    return new ReplicaLease(state);
                }
            }
        }

        var start = (int)((uint)Interlocked.Increment(ref _rotation) % (uint)count);
        ReplicaState? best = null;
        var bestHealthy = false;
        for (var i = 0; i < count; i++)
        {
            var uri = candidates[(start + i) % count];
            if (exclude is not null && exclude.Contains(uri))
            {
                continue;
            }

            var state = _replicas.GetOrAdd(uri, static u => new ReplicaState(u));
            var healthy = Volatile.Read(ref state.CooldownUntil) <= now;
            if (best is null
                || (healthy && !bestHealthy)
                || (healthy == bestHealthy && Volatile.Read(ref state.Outstanding) < Volatile.Read(ref best.Outstanding)))
            {
                best = state;
                bestHealthy = healthy;
            }
        }

        if (best is null)
        {
            return null;
        }

        Interlocked.Increment(ref best.Outstanding);
        return new ReplicaLease(best);
    }

    /// <summary>Marks <paramref name="replica"/> as failing for the cool-down.</summary>
    public void ReportFailure(Uri replica)
    {
        var state = _replicas.GetOrAdd(replica, static u => new ReplicaState(u));
        var until = timeProvider.GetTimestamp() + (long)(failureCooldown.TotalSeconds * timeProvider.TimestampFrequency);
        Volatile.Write(ref state.CooldownUntil, until);
    }

    /// <summary>Clears the cool-down after a success.</summary>
    public void ReportSuccess(Uri replica)
    {
        if (_replicas.TryGetValue(replica, out var state) && Volatile.Read(ref state.CooldownUntil) != 0)
        {
            Volatile.Write(ref state.CooldownUntil, 0);
        }
    }

    /// <summary>Requests in flight to each known replica, and whether it is cooling down after a failure.</summary>
    public IReadOnlyList<ReplicaStatus> Snapshot()
    {
        var now = timeProvider.GetTimestamp();
        return [.. _replicas.Values.Select(s => new ReplicaStatus(s.Address, Volatile.Read(ref s.Outstanding), Volatile.Read(ref s.CooldownUntil) > now))];
    }

    internal sealed class ReplicaState(Uri address)
    {
        public readonly Uri Address = address;
        public int Outstanding;
        public long CooldownUntil;
    }
}

/// <summary>One request's claim on a replica; disposing it ends the request's count.</summary>
public sealed class ReplicaLease : IDisposable
{
    private ReplicaBalancer.ReplicaState? _state;

    internal ReplicaLease(ReplicaBalancer.ReplicaState state) => _state = state;

    /// <summary>The chosen replica's base address.</summary>
    public Uri Replica => _state?.Address ?? throw new ObjectDisposedException(nameof(ReplicaLease));

    /// <inheritdoc />
    public void Dispose()
    {
        var state = Interlocked.Exchange(ref _state, null);
        if (state is not null)
        {
            Interlocked.Decrement(ref state.Outstanding);
        }
    }
}

/// <summary>A replica as the balancer sees it.</summary>
/// <param name="Address">Base address.</param>
/// <param name="Outstanding">Requests in flight.</param>
/// <param name="CoolingDown">Recently failed to answer.</param>
public sealed record ReplicaStatus(Uri Address, int Outstanding, bool CoolingDown);
