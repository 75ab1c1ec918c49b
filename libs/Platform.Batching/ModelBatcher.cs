using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Platform.OnnxRuntime;

namespace Platform.Batching;

/// <summary>
/// Dynamic batcher of one model version. Requests wait in a bounded queue; a batch closes when it holds
/// <see cref="BatchingOptions.MaxBatchSize"/> rows, when its oldest request has waited <see cref="BatchingOptions.MaxQueueDelay"/>,
/// or (<see cref="BatchingOptions.DispatchWhenIdle"/>, the default) as soon as no batch of this model version is running.
/// Only requests with the same non-batch dimensions, element types and requested outputs share a batch; they are
/// concatenated along dimension 0 into one buffer per input, run once, and each output is split back by rows.
/// Batches run one at a time: ONNX Runtime already spreads one run over its intra-op threads, and requests that
/// arrive meanwhile form the next, larger batch. So with idle dispatch a lone request runs at once, and under load the
/// batch size follows the arrival rate times the run time without any timer.
/// </summary>
public sealed partial class ModelBatcher : IAsyncDisposable
{
    private readonly InferenceSession _session;
    private readonly BatcherTelemetry _telemetry;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly TagList _tags;
    private readonly bool _modelBatches;
    private readonly object _gate = new();
    private readonly Dictionary<string, Queue<Pending>> _groups = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _loop;
    private volatile BatchingOptions _options;
    private int _depth;
    private long _soloSequence;
    private long _lastComputeTicks = TimeSpan.FromMilliseconds(5).Ticks;
    private bool _stopped;

    /// <summary>Starts the batcher's dispatch loop over <paramref name="session"/> (which the caller keeps owning).</summary>
    public ModelBatcher(InferenceSession session, string model, long version, BatchingOptions options, BatcherTelemetry telemetry,
        TimeProvider timeProvider, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(options);
        _session = session;
        Model = model;
        Version = version;
        _options = options;
        _telemetry = telemetry;
        _time = timeProvider;
        _logger = logger;
        // The provider is a label of every model metric, so dashboards can tell CUDA replicas from CPU ones.
        _tags = new TagList
        {
            { "model", model },
            { "model.version", version.ToString(CultureInfo.InvariantCulture) },
            { "execution.provider", session.ExecutionProvider },
        };
        Statistics = new BatcherStatistics(timeProvider);
        // Splitting needs dimension 0 to be the batch on every input and output.
        _modelBatches = session.Inputs.Count > 0
            && session.Inputs.All(i => i.HasDynamicBatch)
            && session.Outputs.All(o => o.HasDynamicBatch);
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Model name.</summary>
    public string Model { get; }

    /// <summary>Model version.</summary>
    public long Version { get; }

    /// <summary>Whether the model can batch at all (dynamic dimension 0 on every input and output).</summary>
    public bool ModelSupportsBatching => _modelBatches;

    /// <summary>Current limits; setting them applies to the next batch and the next enqueue.</summary>
    public BatchingOptions Options
    {
        get => _options;
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            _options = value;
            Wake();
        }
    }

    /// <summary>Requests waiting (each request of an <see cref="InferenceWorkGroup"/> counts).</summary>
    public int QueueDepth => Volatile.Read(ref _depth);

    /// <summary>Cumulative statistics (Triton's statistics extension) of this model version on this worker.</summary>
    public BatcherStatistics Statistics { get; }

    /// <summary>
    /// Queues a request and completes when its batch has run. The request must already have been validated against
    /// the model's signature (Platform.Inference.Protocol's InferRequestValidator, as the worker does): here inputs are
    /// only put in model order.
    /// </summary>
    /// <exception cref="InvalidInferenceRequestException">An input the model does not have, or a missing one.</exception>
    /// <exception cref="QueueFullException">The queue is full.</exception>
    /// <exception cref="DeadlineExceededException">The deadline passed before the request ran.</exception>
    /// <exception cref="BatcherStoppedException">The batcher is stopping.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired before the request ran.</exception>
    public Task<InferenceOutcome> InferAsync(InferenceWork work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        var inputs = InModelOrder(work.Inputs);
        return Enqueue([inputs], [RowsOf(inputs)], work.Outputs, work.Deadline, group: false, cancellationToken).Single!.Task;
    }

    /// <summary>
    /// Queues <paramref name="group"/>'s requests as one entry (see <see cref="InferenceWorkGroup"/>) and completes when
    /// they have run, with one outcome per request in the group's order. Validated as for <see cref="InferAsync"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The group is empty.</exception>
    /// <exception cref="InvalidInferenceRequestException">
    /// An input the model does not have or a missing one; or, with several requests, the model has no batch dimension or
    /// the requests disagree on more than their rows.
    /// </exception>
    /// <exception cref="QueueFullException">The queue is full.</exception>
    /// <exception cref="DeadlineExceededException">The deadline passed before the requests ran.</exception>
    /// <exception cref="BatcherStoppedException">The batcher is stopping.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired before the requests ran.</exception>
    public Task<InferenceOutcome[]> InferGroupAsync(InferenceWorkGroup group, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentOutOfRangeException.ThrowIfZero(group.Parts.Count);
        var parts = new BatchInput[group.Parts.Count][];
        var rows = new int[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            parts[i] = InModelOrder(group.Parts[i]);
            rows[i] = RowsOf(parts[i]);
            if (parts.Length > 1 && (rows[i] == 0 || !AgreeButOnRows(parts[0], parts[i])))
            {
                throw new InvalidInferenceRequestException(
                    $"request {i} of a group for model '{Model}' cannot share a batch with the first (the model has no batch dimension, or they differ in more than their rows)");
            }
        }

        return Enqueue(parts, rows, group.Outputs, group.Deadline, group: true, cancellationToken).Group!.Task;
    }

    /// <summary>Queues one entry (a request, or a group's requests, inputs in model order) and returns it.</summary>
    private Pending Enqueue(BatchInput[][] parts, int[] rows, IReadOnlyList<string>? outputs, DateTimeOffset? deadline, bool group,
        CancellationToken cancellationToken)
    {
        var pending = new Pending(parts, rows, outputs is { Count: > 0 } ? outputs : null, deadline, group, _time.GetTimestamp(), Activity.Current?.Context);
        var requests = pending.Requests;
        cancellationToken.ThrowIfCancellationRequested();
        if (deadline is { } passed && passed <= _time.GetUtcNow())
        {
            _telemetry.Rejections.Add(requests, WithReason("deadline"));
            Statistics.RecordFailure(TimeSpan.Zero, requests);
            throw new DeadlineExceededException($"the deadline {passed:O} passed before the request was queued");
        }

        pending.Key = pending.Solo ? $"solo:{Interlocked.Increment(ref _soloSequence)}" : GroupKey(pending.Parts[0], pending.Outputs);
        lock (_gate)
        {
            if (_stopped)
            {
                _telemetry.Rejections.Add(requests, WithReason("stopped"));
                Statistics.RecordFailure(TimeSpan.Zero, requests);
                throw new BatcherStoppedException($"model '{Model}' version {Version} is unloading");
            }
            var options = _options;
            if (_depth >= options.QueueCapacity)
            {
                _telemetry.Rejections.Add(requests, WithReason("queue_full"));
                Statistics.RecordFailure(TimeSpan.Zero, requests);
                throw new QueueFullException(Model, Version, options.QueueCapacity, EstimateRetryAfter(options));
            }
            if (!_groups.TryGetValue(pending.Key, out var queue))
            {
                _groups[pending.Key] = queue = new Queue<Pending>();
            }
            queue.Enqueue(pending);
            _depth += requests;
        }
        _telemetry.QueueDepth.Add(requests, _tags);

        if (cancellationToken.CanBeCanceled)
        {
            pending.Registration = cancellationToken.Register(static state =>
            {
                var (batcher, item, token) = ((ModelBatcher, Pending, CancellationToken))state!;
                if (batcher.TryDrop(item))
                {
                    batcher._telemetry.Rejections.Add(item.Requests, batcher.WithReason("cancelled"));
                    item.Cancel(token);
                }
            }, (this, pending, cancellationToken));
        }
        Wake();
        return pending;
    }

    /// <summary>
    /// Stops accepting requests, runs the ones already queued (without waiting for more) and ends the loop. The session
    /// is not disposed.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            _stopped = true;
        }
        Wake();
        await _loop.ConfigureAwait(false);
        _stopping.Dispose();
        _wake.Dispose();
    }

    private async Task LoopAsync()
    {
        while (true)
        {
            List<Pending>? batch = null;
            TimeSpan wait = Timeout.InfiniteTimeSpan;
            lock (_gate)
            {
                var options = _options;
                var (queue, head) = OldestGroup();
                if (queue is null)
                {
                    if (_stopped)
                    {
                        return;
                    }
                }
                else
                {
                    var waited = _time.GetElapsedTime(head!.EnqueuedTimestamp);
                    var rows = RowsIn(queue);
                    // Batches run one at a time on this loop, so deciding here means the model version is idle: with idle
                    // dispatch nothing is gained by waiting, the requests that arrived during the last run are the batch.
                    if (_stopped || head.Solo || options.DispatchWhenIdle || rows >= options.MaxBatchSize || waited >= options.MaxQueueDelay)
                    {
                        batch = Take(queue, options.MaxBatchSize);
                        if (queue.Count == 0)
                        {
                            _groups.Remove(head.Key);
                        }
                    }
                    else
                    {
                        wait = options.MaxQueueDelay - waited;
                    }
                }
            }

            if (batch is not null)
            {
                if (batch.Count > 0)
                {
                    Execute(batch);
                }
                continue;
            }

            await WaitForWorkAsync(wait).ConfigureAwait(false);
        }
    }

    private async Task WaitForWorkAsync(TimeSpan wait)
    {
        if (wait == Timeout.InfiniteTimeSpan)
        {
            await _wake.WaitAsync().ConfigureAwait(false);
            return;
        }
        using var cancel = new CancellationTokenSource();
        var woken = _wake.WaitAsync(cancel.Token);
        var timer = Task.Delay(wait, _time, cancel.Token);
        await Task.WhenAny(woken, timer).ConfigureAwait(false);
        await cancel.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(woken, timer).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The loser of the race.
        }
    }

    /// <summary>The group whose first live request is the oldest; drops dead heads on the way. Caller holds the gate.</summary>
    private (Queue<Pending>? Queue, Pending? Head) OldestGroup()
    {
        Queue<Pending>? best = null;
        Pending? bestHead = null;
        List<string>? empty = null;
        foreach (var (key, queue) in _groups)
        {
            while (queue.Count > 0 && queue.Peek().State != Pending.Waiting)
            {
                queue.Dequeue();
            }
            if (queue.Count == 0)
            {
                (empty ??= []).Add(key);
                continue;
            }
            var head = queue.Peek();
            if (bestHead is null || head.EnqueuedTimestamp < bestHead.EnqueuedTimestamp)
            {
                best = queue;
                bestHead = head;
            }
        }
        if (empty is not null)
        {
            foreach (var key in empty)
            {
                _groups.Remove(key);
            }
        }
        return (best, bestHead);
    }

    private static int RowsIn(Queue<Pending> queue)
    {
        var rows = 0;
        foreach (var item in queue)
        {
            if (item.State == Pending.Waiting)
            {
                rows += item.Rows;
            }
        }
        return rows;
    }

    /// <summary>Claims requests in arrival order up to <paramref name="maxRows"/> (always at least one). Caller holds the gate.</summary>
    private List<Pending> Take(Queue<Pending> queue, int maxRows)
    {
        var batch = new List<Pending>();
        var rows = 0;
        var now = _time.GetUtcNow();
        while (queue.Count > 0)
        {
            var next = queue.Peek();
            if (next.State != Pending.Waiting)
            {
                queue.Dequeue();
                continue;
            }
            if (batch.Count > 0 && rows + next.Rows > maxRows)
            {
                break;
            }
            queue.Dequeue();
            if (Interlocked.CompareExchange(ref next.State, Pending.Claimed, Pending.Waiting) != Pending.Waiting)
            {
                continue;
            }
            _depth -= next.Requests;
            _telemetry.QueueDepth.Add(-next.Requests, _tags);
            // Unregister, not Dispose: Dispose would wait for a running cancel callback, which needs this lock.
            next.Registration.Unregister();
            if (next.Deadline is { } deadline && deadline <= now)
            {
                _telemetry.Rejections.Add(next.Requests, WithReason("deadline"));
                Statistics.RecordFailure(_time.GetElapsedTime(next.EnqueuedTimestamp), next.Requests);
                next.Fail(new DeadlineExceededException(
                    $"the deadline {deadline:O} passed after {_time.GetElapsedTime(next.EnqueuedTimestamp).TotalMilliseconds:0.###} ms in the queue; the request was not run"));
                continue;
            }
            batch.Add(next);
            rows += next.Rows;
        }
        return batch;
    }

    private bool TryDrop(Pending item)
    {
        lock (_gate)
        {
            if (Interlocked.CompareExchange(ref item.State, Pending.Dropped, Pending.Waiting) != Pending.Waiting)
            {
                return false;
            }
            _depth -= item.Requests;
        }
        _telemetry.QueueDepth.Add(-item.Requests, _tags);
        Wake();
        return true;
    }

    private void Execute(List<Pending> batch)
    {
        var started = _time.GetTimestamp();
        var totalRows = 0;
        var requests = 0;
        foreach (var item in batch)
        {
            totalRows += item.Rows;
            requests += item.Requests;
        }
        var first = batch[0];
        using var activity = StartActivity(batch, totalRows, requests);
        var rented = new List<byte[]>();
        try
        {
            var inputs = new NamedTensor[first.Parts[0].Length];
            for (var i = 0; i < inputs.Length; i++)
            {
                inputs[i] = new NamedTensor(first.Parts[0][i].Name, Concatenate(batch, requests, i, totalRows, rented));
            }

            var computeStart = _time.GetTimestamp();
            using var result = _session.Run(inputs, first.Outputs, _stopping.Token);
            var compute = _time.GetElapsedTime(computeStart);
            Interlocked.Exchange(ref _lastComputeTicks, compute.Ticks);

            var splitStart = _time.GetTimestamp();
            var split = Split(batch, requests, result, totalRows);
            var finished = _time.GetTimestamp();
            Statistics.RecordBatch(totalRows, requests, _time.GetElapsedTime(started, computeStart), compute, _time.GetElapsedTime(splitStart, finished));
            _telemetry.BatchSize.Record(totalRows, _tags);
            _telemetry.BatchRequests.Record(requests, _tags);
            _telemetry.ComputeTime.Record(compute.TotalSeconds, _tags);
            _telemetry.Inferences.Add(totalRows, _tags);
            activity?.SetTag("batch.compute_ms", compute.TotalMilliseconds);
            var part = 0;
            foreach (var item in batch)
            {
                var queueTime = _time.GetElapsedTime(item.EnqueuedTimestamp, started);
                for (var q = 0; q < item.Requests; q++)
                {
                    _telemetry.QueueTime.Record(queueTime.TotalSeconds, _tags);
                }
                Statistics.RecordQueued(queueTime, item.Requests);
                Statistics.RecordSuccess(_time.GetElapsedTime(item.EnqueuedTimestamp, finished), item.Requests);
                var outcomes = new InferenceOutcome[item.Requests];
                for (var q = 0; q < outcomes.Length; q++)
                {
                    outcomes[q] = new InferenceOutcome(split[part++], totalRows, requests, queueTime, compute);
                }
                item.Complete(outcomes);
            }
        }
        catch (Exception ex)
        {
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            LogBatchFailed(_logger, Model, Version, requests, totalRows, ex);
            _telemetry.Rejections.Add(requests, WithReason("error"));
            foreach (var item in batch)
            {
                Statistics.RecordFailure(_time.GetElapsedTime(item.EnqueuedTimestamp), item.Requests);
                item.Fail(ex);
            }
        }
        finally
        {
            foreach (var buffer in rented)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    private Activity? StartActivity(List<Pending> batch, int totalRows, int requests)
    {
        if (!_telemetry.ActivitySource.HasListeners())
        {
            return null;
        }
        var links = new List<ActivityLink>(batch.Count);
        foreach (var item in batch)
        {
            if (item.ActivityContext is { } context)
            {
                links.Add(new ActivityLink(context));
            }
        }
        // A batch serves many requests, so it is a root linked to each of them rather than a child of one.
        var activity = _telemetry.ActivitySource.StartActivity(ActivityKind.Internal, parentContext: default, links: links, name: $"batch {Model}");
        activity?.SetTag("model", Model);
        activity?.SetTag("model.version", Version);
        activity?.SetTag("batch.rows", totalRows);
        activity?.SetTag("batch.requests", requests);
        return activity;
    }

    /// <summary>Input <paramref name="input"/> of every request in the batch, one after another: one copy, none for a lone request.</summary>
    private static TensorData Concatenate(List<Pending> batch, int requests, int input, int totalRows, List<byte[]> rented)
    {
        var first = batch[0].Parts[0][input];
        if (requests == 1)
        {
            // Nothing to concatenate: hand the request's own buffer to ONNX Runtime.
            return first.ElementType == TensorElementType.String
                ? TensorData.FromStrings(first.Strings!, first.Shape)
                : TensorData.FromBytes(first.ElementType, first.Data, first.Shape);
        }

        var shape = (long[])first.Shape.Clone();
        shape[0] = totalRows;
        if (first.ElementType == TensorElementType.String)
        {
            var strings = new List<string>();
            foreach (var item in batch)
            {
                foreach (var part in item.Parts)
                {
                    strings.AddRange(part[input].Strings!);
                }
            }
            return TensorData.FromStrings(strings, shape);
        }

        var length = 0;
        foreach (var item in batch)
        {
            foreach (var part in item.Parts)
            {
                length = checked(length + part[input].Data.Length);
            }
        }
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
        rented.Add(buffer);
        var offset = 0;
        foreach (var item in batch)
        {
            foreach (var part in item.Parts)
            {
                var data = part[input].Data.Span;
                data.CopyTo(buffer.AsSpan(offset));
                offset += data.Length;
            }
        }
        return TensorData.FromBytes(first.ElementType, buffer.AsMemory(0, length), shape);
    }

    /// <summary>Each request's rows of every output, requests in batch order (a group's one after another).</summary>
    private static List<BatchOutput>[] Split(List<Pending> batch, int requests, InferenceResult result, int totalRows)
    {
        var split = new List<BatchOutput>[requests];
        for (var r = 0; r < split.Length; r++)
        {
            split[r] = new List<BatchOutput>(result.Count);
        }

        foreach (var tensor in result)
        {
            var shape = tensor.Shape.ToArray();
            if (requests == 1)
            {
                split[0].Add(tensor.ElementType == TensorElementType.String
                    ? new BatchOutput(tensor.Name, tensor.ElementType, shape, ReadOnlyMemory<byte>.Empty, tensor.GetStrings())
                    : new BatchOutput(tensor.Name, tensor.ElementType, shape, Rows(tensor, 0, shape.Length == 0 ? 1 : shape[0]), null));
                continue;
            }

            if (shape.Length == 0 || shape[0] != totalRows)
            {
                throw new InvalidOperationException(
                    $"output '{tensor.Name}' has shape {Platform.Inference.Protocol.InferRequestValidator.FormatShape(shape)}, whose dimension 0 is not the batch's {totalRows} rows; it cannot be split");
            }
            var strings = tensor.ElementType == TensorElementType.String ? tensor.GetStrings() : null;
            var perRow = tensor.ElementsPerBatchItem;
            long row = 0;
            var r = 0;
            foreach (var item in batch)
            {
                foreach (var rows in item.PartRows)
                {
                    var itemShape = (long[])shape.Clone();
                    itemShape[0] = rows;
                    split[r++].Add(strings is not null
                        ? new BatchOutput(tensor.Name, tensor.ElementType, itemShape, ReadOnlyMemory<byte>.Empty,
                            strings[(int)(row * perRow)..(int)((row + rows) * perRow)])
                        : new BatchOutput(tensor.Name, tensor.ElementType, itemShape, Rows(tensor, row, rows), null));
                    row += rows;
                }
            }
        }
        return split;
    }

    /// <summary>
    /// A request's rows of an output: a slice of the batch's own buffer when ONNX Runtime wrote into a pre-allocated
    /// managed one (no copy; nothing writes to it after the run), otherwise a copy out of ONNX Runtime's memory, which
    /// is released with the result.
    /// </summary>
    private static ReadOnlyMemory<byte> Rows(OrtTensor tensor, long start, long count) =>
        tensor.TryGetBatchItemMemory(start, count, out var memory) ? memory : tensor.GetBatchItemBytes(start, count).ToArray();

    /// <summary>The request's inputs in the model's input order.</summary>
    private BatchInput[] InModelOrder(IReadOnlyList<BatchInput> given)
    {
        var modelInputs = _session.Inputs;
        var ordered = new BatchInput[modelInputs.Count];
        foreach (var input in given)
        {
            var index = -1;
            for (var i = 0; i < modelInputs.Count; i++)
            {
                if (string.Equals(modelInputs[i].Name, input.Name, StringComparison.Ordinal))
                {
                    index = i;
                    break;
                }
            }

            if (index < 0 || ordered[index] is not null)
            {
                throw new InvalidInferenceRequestException($"input '{input.Name}' is not an input of model '{Model}' or is given more than once");
            }

            ordered[index] = input;
        }

        var missing = Array.IndexOf(ordered, null);
        return missing < 0 ? ordered : throw new InvalidInferenceRequestException($"missing input '{modelInputs[missing].Name}' of model '{Model}'");
    }

    /// <summary>Rows of a request along dimension 0, or 0 when it cannot share a batch.</summary>
    private int RowsOf(BatchInput[] inputs)
    {
        if (!_modelBatches)
        {
            return 0;
        }
        var rows = inputs[0].Shape[0];
        foreach (var input in inputs)
        {
            if (input.Shape[0] != rows)
            {
                return 0;
            }
        }
        return rows is > 0 and <= int.MaxValue ? (int)rows : 0;
    }

    /// <summary>Whether two requests' inputs (model order) have the same element types and trailing dimensions.</summary>
    private static bool AgreeButOnRows(BatchInput[] first, BatchInput[] other)
    {
        for (var i = 0; i < first.Length; i++)
        {
            if (first[i].ElementType != other[i].ElementType || !first[i].Shape.AsSpan(1).SequenceEqual(other[i].Shape.AsSpan(1)))
            {
                return false;
            }
        }
        return true;
    }

    private static string GroupKey(BatchInput[] inputs, IReadOnlyList<string>? outputs)
    {
        var key = new System.Text.StringBuilder();
        foreach (var input in inputs)
        {
            key.Append((int)input.ElementType);
            for (var d = 1; d < input.Shape.Length; d++)
            {
                key.Append(',').Append(input.Shape[d]);
            }
            key.Append(';');
        }
        key.Append('|');
        if (outputs is not null)
        {
            key.AppendJoin('\u001f', outputs);
        }
        return key.ToString();
    }

    private TimeSpan EstimateRetryAfter(BatchingOptions options)
    {
        // Time to drain the queue at the recent batch rate, bounded to something a client can act on.
        var batchesAhead = (double)_depth / Math.Max(options.MaxBatchSize, 1) + 1;
        var estimate = TimeSpan.FromTicks((long)(Interlocked.Read(ref _lastComputeTicks) * batchesAhead)) + options.MaxQueueDelay;
        return TimeSpan.FromMilliseconds(Math.Clamp(estimate.TotalMilliseconds, 10, 5000));
    }

    private TagList WithReason(string reason)
    {
        var tags = _tags;
        tags.Add("reason", reason);
        return tags;
    }

    private void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already signalled.
        }
        catch (ObjectDisposedException)
        {
            // Stopped.
        }
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Error, Message = "Batch of {Model} version {Version} failed ({Requests} requests, {Rows} rows)")]
    private static partial void LogBatchFailed(ILogger logger, string model, long version, int requests, int rows, Exception exception);

    /// <summary>A queue entry: one request, or a group's requests that wait, run and complete together.</summary>
    private sealed class Pending(BatchInput[][] parts, int[] partRows, IReadOnlyList<string>? outputs, DateTimeOffset? deadline, bool group,
        long enqueuedTimestamp, ActivityContext? activityContext)
    {
        public const int Waiting = 0;
        public const int Claimed = 1;
        public const int Dropped = 2;

        public int State;

        /// <summary>Each request's inputs in model order.</summary>
        public BatchInput[][] Parts { get; } = parts;

        /// <summary>Each request's rows along dimension 0 (0: cannot share a batch).</summary>
        public int[] PartRows { get; } = partRows;

        public IReadOnlyList<string>? Outputs { get; } = outputs;

        /// <summary>Rows it adds to a batch (a request that cannot share one counts as one).</summary>
        public int Rows { get; } = partRows[0] == 0 ? 1 : partRows.Sum();

        public int Requests => Parts.Length;

        public string Key { get; set; } = string.Empty;

        /// <summary>
        /// Cannot share a batch (model without a batch dimension, inputs disagreeing on dimension 0: 0 rows): runs at once.
        /// </summary>
        public bool Solo { get; } = partRows[0] == 0;

        public DateTimeOffset? Deadline { get; } = deadline;

        public long EnqueuedTimestamp { get; } = enqueuedTimestamp;

        public ActivityContext? ActivityContext { get; } = activityContext;

        public CancellationTokenRegistration Registration { get; set; }

        public TaskCompletionSource<InferenceOutcome>? Single { get; } = group ? null : new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource<InferenceOutcome[]>? Group { get; } = group ? new(TaskCreationOptions.RunContinuationsAsynchronously) : null;

        public void Complete(InferenceOutcome[] outcomes)
        {
            if (Group is not null)
            {
                Group.TrySetResult(outcomes);
            }
            else
            {
                Single!.TrySetResult(outcomes[0]);
            }
        }

        public void Fail(Exception exception)
        {
            if (Group is not null)
            {
                Group.TrySetException(exception);
            }
            else
            {
                Single!.TrySetException(exception);
            }
        }

        public void Cancel(CancellationToken token)
        {
            if (Group is not null)
            {
                Group.TrySetCanceled(token);
            }
            else
            {
                Single!.TrySetCanceled(token);
            }
        }
    }
}
