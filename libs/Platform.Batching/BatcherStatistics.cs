using System.Collections.Concurrent;

namespace Platform.Batching;

/// <summary>A count and the cumulative duration of what was counted.</summary>
/// <param name="Count">How many.</param>
/// <param name="Nanoseconds">Their total duration.</param>
public readonly record struct DurationTotal(ulong Count, ulong Nanoseconds);

/// <summary>Totals of the batches that ran with one batch size.</summary>
/// <param name="BatchSize">Rows of those batches.</param>
/// <param name="ComputeInput">Preparing inputs (concatenating the requests' rows).</param>
/// <param name="ComputeInfer">The ONNX Runtime run.</param>
/// <param name="ComputeOutput">Splitting outputs back to the requests.</param>
public sealed record BatchSizeTotals(int BatchSize, DurationTotal ComputeInput, DurationTotal ComputeInfer, DurationTotal ComputeOutput);

/// <summary>A snapshot of <see cref="BatcherStatistics"/>, in the terms of Triton's statistics extension.</summary>
/// <param name="LastInferenceUnixMs">When the last batch finished (0: never).</param>
/// <param name="InferenceCount">Rows inferred successfully.</param>
/// <param name="ExecutionCount">Batches run successfully.</param>
/// <param name="Success">Requests that succeeded, with their time from arrival to result.</param>
/// <param name="Fail">Requests that failed (queue full, deadline, invalid, run failure), with their time until failing.</param>
/// <param name="Queue">Requests that left the queue for a batch, with their waiting time.</param>
/// <param name="ComputeInput">Per request: its batch's input preparation time.</param>
/// <param name="ComputeInfer">Per request: its batch's run time.</param>
/// <param name="ComputeOutput">Per request: its batch's output splitting time.</param>
/// <param name="Batches">Per batch size: batches and their times.</param>
public sealed record BatcherStatisticsSnapshot(
    ulong LastInferenceUnixMs,
    ulong InferenceCount,
    ulong ExecutionCount,
    DurationTotal Success,
    DurationTotal Fail,
    DurationTotal Queue,
    DurationTotal ComputeInput,
    DurationTotal ComputeInfer,
    DurationTotal ComputeOutput,
    IReadOnlyList<BatchSizeTotals> Batches);

/// <summary>
/// Cumulative statistics of one batcher (one model version on one worker), updated without locks from the dispatch
/// loop and the request paths. Counts follow Triton's definitions: inference count in rows, execution count in
/// batches, and the compute phases once per request (with its batch's duration) in the request totals and once per
/// batch in the per-batch-size totals.
/// </summary>
public sealed class BatcherStatistics(TimeProvider timeProvider)
{
    private readonly ConcurrentDictionary<int, BatchCounters> _batches = new();
    private long _lastInference;
    private long _inferences;
    private long _executions;
    private Counter _success;
    private Counter _fail;
    private Counter _queue;
    private Counter _computeInput;
    private Counter _computeInfer;
    private Counter _computeOutput;

    /// <summary><paramref name="requests"/> requests that failed after <paramref name="elapsed"/> (at the edge of the batcher or in it).</summary>
    public void RecordFailure(TimeSpan elapsed, int requests = 1) => _fail.Add(elapsed, requests);

    /// <summary>A consistent-enough copy of the totals (each counter is read atomically, not all at one instant).</summary>
    public BatcherStatisticsSnapshot Snapshot() => new(
        (ulong)Interlocked.Read(ref _lastInference),
        (ulong)Interlocked.Read(ref _inferences),
        (ulong)Interlocked.Read(ref _executions),
        _success.Read(),
        _fail.Read(),
        _queue.Read(),
        _computeInput.Read(),
        _computeInfer.Read(),
        _computeOutput.Read(),
        [.. _batches.OrderBy(b => b.Key).Select(b => new BatchSizeTotals(b.Key, b.Value.Input.Read(), b.Value.Infer.Read(), b.Value.Output.Read()))]);

    /// <summary><paramref name="requests"/> requests left the queue for a batch after waiting <paramref name="waited"/>.</summary>
    internal void RecordQueued(TimeSpan waited, int requests) => _queue.Add(waited, requests);

    /// <summary>A batch of <paramref name="rows"/> rows serving <paramref name="requests"/> requests ran successfully.</summary>
    internal void RecordBatch(int rows, int requests, TimeSpan input, TimeSpan infer, TimeSpan output)
    {
        var batch = _batches.GetOrAdd(rows, static _ => new BatchCounters());
        batch.Input.Add(input);
        batch.Infer.Add(infer);
        batch.Output.Add(output);
        _computeInput.Add(input, requests);
        _computeInfer.Add(infer, requests);
        _computeOutput.Add(output, requests);
        Interlocked.Add(ref _inferences, rows);
        Interlocked.Increment(ref _executions);
        Interlocked.Exchange(ref _lastInference, timeProvider.GetUtcNow().ToUnixTimeMilliseconds());
    }

    /// <summary><paramref name="requests"/> requests got their results <paramref name="elapsed"/> after they arrived.</summary>
    internal void RecordSuccess(TimeSpan elapsed, int requests) => _success.Add(elapsed, requests);

    private struct Counter
    {
        private long _count;
        private long _nanoseconds;

        public void Add(TimeSpan duration, int times = 1)
        {
            Interlocked.Add(ref _count, times);
            Interlocked.Add(ref _nanoseconds, (long)(duration.Ticks * 100) * times);
        }

        public DurationTotal Read() => new((ulong)Interlocked.Read(ref _count), (ulong)Interlocked.Read(ref _nanoseconds));
    }

    private sealed class BatchCounters
    {
        public Counter Input;
        public Counter Infer;
        public Counter Output;
    }
}
