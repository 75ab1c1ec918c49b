using System.Diagnostics;

namespace Platform.Coalescing;

/// <summary>
/// Shares round trips among concurrent callers. Per key (a lane) up to <c>callsInFlight</c> calls run at once; an item
/// that finds a free slot goes out at once, alone (a lone caller never waits), and items arriving while every slot is
/// busy queue and leave together, up to <c>maxItems</c> per call, as soon as a call returns. The batch size thus follows
/// the arrival rate times the round trip, with no timer and no added latency at low load.
/// </summary>
/// <typeparam name="TKey">What items must share to share a call (e.g. a model version).</typeparam>
/// <typeparam name="TItem">One caller's part of a call.</typeparam>
/// <typeparam name="TResult">One caller's outcome.</typeparam>
/// <param name="callsInFlight">Calls per lane at once (at least 1).</param>
/// <param name="maxItems">Items per call (at least 1).</param>
/// <param name="send">
/// Makes one call for the batch and completes each entry with its own outcome (<see cref="Entry.Completion"/>); entries
/// it leaves incomplete when it throws fail with that exception. Runs with <see cref="Activity.Current"/> set to the
/// first caller's activity, so the call's spans join a trace that is still waiting for it.
/// </param>
public sealed class Coalescer<TKey, TItem, TResult>(int callsInFlight, int maxItems, Func<TKey, IReadOnlyList<Coalescer<TKey, TItem, TResult>.Entry>, Task> send)
    where TKey : notnull
{
    private readonly Dictionary<TKey, Lane> _lanes = [];
    private readonly int _callsInFlight = callsInFlight > 0 ? callsInFlight : throw new ArgumentOutOfRangeException(nameof(callsInFlight));
    private readonly int _maxItems = maxItems > 0 ? maxItems : throw new ArgumentOutOfRangeException(nameof(maxItems));

    /// <summary>Queues <paramref name="item"/> on <paramref name="key"/>'s lane and completes with its own outcome.</summary>
    public Task<TResult> EnqueueAsync(TKey key, TItem item)
    {
        var entry = new Entry(item, Activity.Current);
        List<Entry>? batch;
        lock (_lanes)
        {
            if (!_lanes.TryGetValue(key, out var lane))
            {
                _lanes[key] = lane = new Lane();
            }

            lane.Queue.Enqueue(entry);
            batch = TakeBatch(lane);
        }

        if (batch is not null)
        {
            Dispatch(key, batch);
        }

        return entry.Completion.Task;
    }

    private List<Entry>? TakeBatch(Lane lane)
    {
        if (lane.Queue.Count == 0 || lane.InFlight >= _callsInFlight)
        {
            return null;
        }

        var batch = new List<Entry>(Math.Min(lane.Queue.Count, _maxItems));
        while (batch.Count < _maxItems && lane.Queue.TryDequeue(out var next))
        {
            batch.Add(next);
        }

        lane.InFlight++;
        return batch;
    }

    private void Dispatch(TKey key, List<Entry> batch)
    {
        // Not whatever caller's continuation happens to dispatch this batch: the first caller's, which awaits it.
        var previous = Activity.Current;
        Activity.Current = batch[0].Activity;
        try
        {
            _ = RunAsync(key, batch);
        }
        finally
        {
            Activity.Current = previous;
        }
    }

    private async Task RunAsync(TKey key, List<Entry> batch)
    {
        try
        {
            await send(key, batch);
        }
        catch (Exception ex)
        {
            foreach (var entry in batch)
            {
                entry.Completion.TrySetException(ex);
            }
        }

        List<Entry>? next;
        lock (_lanes)
        {
            var lane = _lanes[key];
            lane.InFlight--;
            next = TakeBatch(lane);
            if (next is null && lane.InFlight == 0 && lane.Queue.Count == 0)
            {
                _lanes.Remove(key);
            }
        }

        if (next is not null)
        {
            Dispatch(key, next);
        }
    }

    /// <summary>A queued caller: its item, its activity and its completion.</summary>
    /// <param name="Item">What the caller asked for.</param>
    /// <param name="Activity">The caller's activity when it queued.</param>
    public sealed record Entry(TItem Item, Activity? Activity)
    {
        /// <summary>Completed by the call with this caller's own outcome.</summary>
        public TaskCompletionSource<TResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed class Lane
    {
        public Queue<Entry> Queue { get; } = new();

        public int InFlight { get; set; }
    }
}
