using System.Diagnostics;
using Platform.Inference.Protocol.Wire;

namespace Platform.Inference.Routing;

/// <summary>
/// Forms batches before the worker hop: concurrent requests for the same model version share one worker call. Up to
/// <see cref="WorkerRoutingOptions.CoalesceCallsInFlight"/> calls per version are in flight; a request that finds a free
/// slot goes out at once (alone, so a lone request never waits), and requests arriving while every slot is busy queue and
/// leave together, up to <see cref="WorkerRoutingOptions.CoalesceMaxItems"/> per call, as soon as a call returns. The
/// batch size thus follows the arrival rate times the hop's round trip with no timer, like the workers' own batcher;
/// the worker's batcher still merges calls from several InferenceApi replicas.
/// </summary>
internal sealed class CallCoalescer(int callsInFlight, int maxItems, Func<string, long, IReadOnlyList<CallCoalescer.Pending>, Task> send)
{
    private readonly Dictionary<(string Model, long Version), Lane> _lanes = [];

    /// <summary>Queues <paramref name="item"/> and completes with its own outcome.</summary>
    public Task<WorkerCallResult> EnqueueAsync(string model, long version, InferItem item, DateTimeOffset deadline)
    {
        var pending = new Pending(item, deadline, Activity.Current);
        List<Pending>? batch;
        lock (_lanes)
        {
            if (!_lanes.TryGetValue((model, version), out var lane))
            {
                _lanes[(model, version)] = lane = new Lane();
            }

            lane.Queue.Enqueue(pending);
            batch = TakeBatch(lane);
        }

        if (batch is not null)
        {
            Dispatch(model, version, batch);
        }

        return pending.Completion.Task;
    }

    private List<Pending>? TakeBatch(Lane lane)
    {
        if (lane.Queue.Count == 0 || lane.InFlight >= callsInFlight)
        {
            return null;
        }

        var batch = new List<Pending>(Math.Min(lane.Queue.Count, maxItems));
        while (batch.Count < maxItems && lane.Queue.TryDequeue(out var next))
        {
            batch.Add(next);
        }

        lane.InFlight++;
        return batch;
    }

    private void Dispatch(string model, long version, List<Pending> batch)
    {
        // The call's spans belong to the first request's trace (still running: its caller awaits it), not to whatever
        // request's continuation happens to dispatch this batch.
        var previous = Activity.Current;
        Activity.Current = batch[0].Activity;
        try
        {
            _ = RunAsync(model, version, batch);
        }
        finally
        {
            Activity.Current = previous;
        }
    }

    private async Task RunAsync(string model, long version, List<Pending> batch)
    {
        try
        {
            await send(model, version, batch);
        }
        catch (Exception ex)
        {
            foreach (var pending in batch)
            {
                pending.Completion.TrySetException(ex);
            }
        }

        List<Pending>? next;
        lock (_lanes)
        {
            var lane = _lanes[(model, version)];
            lane.InFlight--;
            next = TakeBatch(lane);
            if (next is null && lane.InFlight == 0 && lane.Queue.Count == 0)
            {
                _lanes.Remove((model, version));
            }
        }

        if (next is not null)
        {
            Dispatch(model, version, next);
        }
    }

    /// <summary>A queued request: its item, deadline, the caller's activity and the caller's completion.</summary>
    internal sealed record Pending(InferItem Item, DateTimeOffset Deadline, Activity? Activity)
    {
        /// <summary>Completed by the batch's sender with this request's own outcome.</summary>
        public TaskCompletionSource<WorkerCallResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed class Lane
    {
        public Queue<Pending> Queue { get; } = new();

        public int InFlight { get; set; }
    }
}
