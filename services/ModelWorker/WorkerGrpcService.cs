using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using Google.Protobuf;
using Grpc.Core;
using Platform.Batching;
using Platform.Inference.Protocol;
using Platform.Inference.Protocol.Wire;
using Platform.ModelRegistry;
using Platform.OnnxRuntime;
using WireDataType = Platform.Inference.Protocol.Wire.DataType;

namespace Platform.ModelWorker;

/// <summary>
/// The worker's gRPC service (<c>platform.worker.v1.ModelWorker</c>, on the HTTP/2-only <c>grpc</c> endpoint): batched
/// inference through each model version's dynamic batcher, load state and statistics. Every request is checked with
/// the protocol library's validator before it is queued, so a bad one fails alone with a message naming the tensor.
/// </summary>
internal sealed partial class WorkerGrpcService(
    ModelHost host,
    IActiveModelsView registry,
    ModelSignatures signatures,
    WorkerIdentity identity,
    TimeProvider timeProvider,
    ILogger<WorkerGrpcService> logger) : Platform.Inference.Protocol.Wire.ModelWorker.ModelWorkerBase
{
    public override async Task<InferBatchResponse> Infer(InferBatchRequest request, ServerCallContext context)
    {
        if (string.IsNullOrEmpty(request.Model))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "model: required"));
        }
        if (request.Version < 0)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"version: {request.Version} is negative (0 means the highest active version)"));
        }

        var model = host.Find(request.Model, request.Version);
        if (model is null && registry.Current.Find(request.Model, request.Version == 0 ? null : request.Version) is { } pending)
        {
            // Active in the registry but not picked up by the loader yet: a moment away, not unknown.
            throw Unavailable($"model '{pending.Name}' version {pending.Version.Version} is about to load on this worker", 1000);
        }
        if (model is null)
        {
            throw new RpcException(new Status(StatusCode.NotFound, request.Version == 0
                ? $"model '{request.Model}' has no active version on this worker"
                : $"model '{request.Model}' version {request.Version} is not active on this worker"));
        }
        if (model.State != ModelLoadState.Ready || model.Batcher is not { } batcher || model.Session is not { } session)
        {
            throw Unavailable(model.State == ModelLoadState.Failed
                ? $"model '{model.Name}' version {model.Version} failed to load on this worker: {model.FailureReason}"
                : $"model '{model.Name}' version {model.Version} is still loading", 1000);
        }

        Activity.Current?.SetTag("model", model.Name);
        Activity.Current?.SetTag("model.version", model.Version);
        var signature = signatures.Of(session);
        var callDeadline = context.Deadline == DateTime.MaxValue ? (DateTimeOffset?)null : new DateTimeOffset(context.Deadline, TimeSpan.Zero);
        var response = new InferBatchResponse { Version = model.Version, WorkerInstance = identity.InstanceId };
        if (request.Items.Count == 1)
        {
            response.Results.Add(await RunAsync(model, batcher, signature, request.Items[0], callDeadline, context.CancellationToken));
        }
        else
        {
            response.Results.AddRange(await RunManyAsync(model, batcher, signature, request.Items, callDeadline, context.CancellationToken));
        }
        return response;
    }

    /// <summary>
    /// A call's items that agree on everything but their rows (inputs, datatypes, trailing dimensions, outputs) are
    /// queued as one batcher group (up to a batch of rows each; <see cref="InferenceWorkGroup"/>): one queue entry and one
    /// completion per call instead of per item, rows copied into the batch once, and each item gets its own rows of the
    /// outputs back. Items that differ or whose deadline has passed go through the batcher on their own, as do all items
    /// of a model without a batch dimension; an item that fails validation fails alone.
    /// </summary>
    private async Task<InferItemResult[]> RunManyAsync(LoadedModel model, ModelBatcher batcher, ModelSignature signature,
        IReadOnlyList<InferItem> items, DateTimeOffset? callDeadline, CancellationToken cancellationToken)
    {
        var results = new InferItemResult[items.Count];
        var merged = new List<Validated>(items.Count);
        var alone = new List<int>();
        InferItem? template = null;
        var now = timeProvider.GetUtcNow();
        for (var i = 0; i < items.Count; i++)
        {
            var item = items[i];
            var deadline = DeadlineOf(item, callDeadline);
            if (!batcher.ModelSupportsBatching || deadline is { } passed && passed <= now || !Mergeable(item, template ??= item, out var rows))
            {
                alone.Add(i);
                continue;
            }

            var tensors = ToTensors(item);
            try
            {
                InferRequestValidator.Validate(tensors, item.Outputs, signature, model.Name, dataLabel: "data");
            }
            catch (InferenceRequestException ex) when (Failure(model, batcher, item.RequestId, timeProvider.GetTimestamp(), ex, 1) is { } failure)
            {
                results[i] = failure;
                continue;
            }

            merged.Add(new Validated(i, rows, tensors, deadline));
        }

        // A shared request holds at most a batch: the batcher runs a request whole, so more rows than MaxBatchSize in one
        // would break the model's batch limit.
        var maxRows = Math.Max(1, batcher.Options.MaxBatchSize);
        var groups = new List<List<Validated>>();
        var rowsInGroup = 0L;
        foreach (var entry in merged)
        {
            if (groups.Count == 0 || rowsInGroup + entry.Rows > maxRows)
            {
                groups.Add([]);
                rowsInGroup = 0;
            }
            groups[^1].Add(entry);
            rowsInGroup += entry.Rows;
        }

        var running = new List<Task>(groups.Count + alone.Count);
        foreach (var group in groups)
        {
            // A group of one too: it is validated already, and the batcher queues it like a single request.
            running.Add(RunMergedAsync(model, batcher, items, group, results, cancellationToken));
        }

        foreach (var index in alone)
        {
            running.Add(RunAloneAsync(model, batcher, signature, items, index, callDeadline, results, cancellationToken));
        }

        await Task.WhenAll(running);
        return results;
    }

    private async Task RunAloneAsync(LoadedModel model, ModelBatcher batcher, ModelSignature signature, IReadOnlyList<InferItem> items, int index,
        DateTimeOffset? callDeadline, InferItemResult[] results, CancellationToken cancellationToken) =>
        results[index] = await RunAsync(model, batcher, signature, items[index], callDeadline, cancellationToken);

    /// <summary>An item of a call that passed validation and may share a batcher group.</summary>
    private sealed record Validated(int Index, long Rows, List<InferTensor> Tensors, DateTimeOffset? Deadline);

    private static DateTimeOffset? DeadlineOf(InferItem item, DateTimeOffset? callDeadline) =>
        item.DeadlineUnixMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(item.DeadlineUnixMs) : callDeadline;

    /// <summary>
    /// A group waits as long as its most patient item (none when one has no deadline): an item whose own deadline passes
    /// in the queue still runs with the others (its caller has given up; its rows cost little next to splitting the group).
    /// </summary>
    private static DateTimeOffset? LatestDeadline(List<Validated> group)
    {
        DateTimeOffset? latest = null;
        foreach (var entry in group)
        {
            if (entry.Deadline is not { } deadline)
            {
                return null;
            }
            if (latest is null || deadline > latest)
            {
                latest = deadline;
            }
        }
        return latest;
    }

    private async Task RunMergedAsync(LoadedModel model, ModelBatcher batcher, IReadOnlyList<InferItem> items,
        List<Validated> merged, InferItemResult[] results, CancellationToken cancellationToken)
    {
        var started = timeProvider.GetTimestamp();
        var first = items[merged[0].Index];
        try
        {
            // Each item's tensors wrap its bytes in the call's message: the batcher copies every row into the batch once.
            var parts = new IReadOnlyList<BatchInput>[merged.Count];
            for (var m = 0; m < merged.Count; m++)
            {
                parts[m] = ToBatchInputs(merged[m].Tensors);
            }

            var outcomes = await batcher.InferGroupAsync(new InferenceWorkGroup(parts, first.Outputs.Count > 0 ? first.Outputs : null, LatestDeadline(merged)), cancellationToken);
            for (var m = 0; m < merged.Count; m++)
            {
                results[merged[m].Index] = ResultWithOutputs(outcomes[m]);
            }
        }
        catch (Exception ex) when (Failure(model, batcher, first.RequestId, started, ex, merged.Count) is { } failure)
        {
            foreach (var entry in merged)
            {
                results[entry.Index] = failure;
            }
        }
    }

    /// <summary>
    /// Whether <paramref name="item"/> can join <paramref name="template"/> in one batcher group: the same inputs in
    /// the same order with the same datatypes and trailing dimensions, one row count across its inputs, the
    /// same outputs. Validation against the model comes after.
    /// </summary>
    private static bool Mergeable(InferItem item, InferItem template, out long rows)
    {
        rows = 0;
        if (item.Inputs.Count == 0 || item.Inputs.Count != template.Inputs.Count || !item.Outputs.SequenceEqual(template.Outputs))
        {
            return false;
        }

        for (var j = 0; j < item.Inputs.Count; j++)
        {
            var input = item.Inputs[j];
            var other = template.Inputs[j];
            if (!DataTypes.TryFromWire(input.Datatype, out _) || input.Datatype != other.Datatype
                || !string.Equals(input.Name, other.Name, StringComparison.Ordinal)
                || input.Shape.Count < 1 || input.Shape.Count != other.Shape.Count || input.Shape[0] < 1 || j > 0 && input.Shape[0] != rows)
            {
                return false;
            }

            for (var d = 1; d < input.Shape.Count; d++)
            {
                if (input.Shape[d] != other.Shape[d])
                {
                    return false;
                }
            }
            rows = input.Shape[0];
        }
        return true;
    }

    public override Task<ModelStatesResponse> ModelStates(ModelStatesRequest request, ServerCallContext context)
    {
        var response = new ModelStatesResponse { WorkerInstance = identity.InstanceId };
        foreach (var model in Select(request.Model, request.Version))
        {
            response.Models.Add(new ModelState
            {
                Model = model.Name,
                Version = model.Version,
                State = model.State switch
                {
                    ModelLoadState.Ready => LoadState.Ready,
                    ModelLoadState.Failed => LoadState.Failed,
                    _ => LoadState.Loading,
                },
                Reason = model.FailureReason ?? string.Empty,
                QueueDepth = model.Batcher?.QueueDepth ?? 0,
            });
        }
        return Task.FromResult(response);
    }

    public override Task<ModelStatisticsResponse> ModelStatistics(ModelStatisticsRequest request, ServerCallContext context)
    {
        var response = new ModelStatisticsResponse { WorkerInstance = identity.InstanceId };
        foreach (var model in Select(request.Model, request.Version))
        {
            if (model.Batcher is not { } batcher)
            {
                continue;
            }
            var totals = batcher.Statistics.Snapshot();
            var statistics = new VersionStatistics
            {
                Model = model.Name,
                Version = model.Version,
                LastInferenceUnixMs = totals.LastInferenceUnixMs,
                InferenceCount = totals.InferenceCount,
                ExecutionCount = totals.ExecutionCount,
                Success = Wire(totals.Success),
                Fail = Wire(totals.Fail),
                Queue = Wire(totals.Queue),
                ComputeInput = Wire(totals.ComputeInput),
                ComputeInfer = Wire(totals.ComputeInfer),
                ComputeOutput = Wire(totals.ComputeOutput),
                QueueDepth = batcher.QueueDepth,
            };
            foreach (var batch in totals.Batches)
            {
                statistics.Batches.Add(new BatchStatistics
                {
                    BatchSize = (ulong)batch.BatchSize,
                    ComputeInput = Wire(batch.ComputeInput),
                    ComputeInfer = Wire(batch.ComputeInfer),
                    ComputeOutput = Wire(batch.ComputeOutput),
                });
            }
            response.Models.Add(statistics);
        }
        return Task.FromResult(response);
    }

    private async Task<InferItemResult> RunAsync(LoadedModel model, ModelBatcher batcher, ModelSignature signature, InferItem item,
        DateTimeOffset? callDeadline, CancellationToken cancellationToken)
    {
        var started = timeProvider.GetTimestamp();
        try
        {
            var tensors = ToTensors(item);
            InferRequestValidator.Validate(tensors, item.Outputs, signature, model.Name, dataLabel: "data");
            var work = new InferenceWork(ToBatchInputs(tensors), item.Outputs.Count > 0 ? item.Outputs : null, DeadlineOf(item, callDeadline));
            return ResultWithOutputs(await batcher.InferAsync(work, cancellationToken));
        }
        catch (Exception ex) when (Failure(model, batcher, item.RequestId, started, ex, 1) is { } failure)
        {
            return failure;
        }
    }

    private static InferItemResult ResultWithOutputs(InferenceOutcome outcome)
    {
        var result = new InferItemResult
        {
            BatchSize = outcome.BatchRows,
            QueueMicros = (long)outcome.QueueTime.TotalMicroseconds,
            ComputeMicros = (long)outcome.ComputeTime.TotalMicroseconds,
        };
        foreach (var output in outcome.Outputs)
        {
            result.Outputs.Add(ToWire(output));
        }
        return result;
    }

    private static Tensor ToWire(BatchOutput output)
    {
        var tensor = new Tensor
        {
            Name = output.Name,
            Datatype = DataTypes.TryFromOnnxElementType((int)output.ElementType, out var type) ? type.ToWire() : WireDataType.Unspecified,
            Data = output.Strings is { } strings
                ? UnsafeByteOperations.UnsafeWrap(BytesCodec.EncodeStrings(strings))
                // The batcher hands each request its own copy, so wrapping it without another copy is safe.
                : UnsafeByteOperations.UnsafeWrap(output.Data),
        };
        tensor.Shape.Add(output.Shape);
        return tensor;
    }

    /// <summary>What the client gets for an exception of the batcher or the run (null: not one to answer, let it propagate).</summary>
    private InferItemResult? Failure(LoadedModel model, ModelBatcher batcher, string requestId, long started, Exception exception, int requests)
    {
        switch (exception)
        {
            case InferenceRequestException or InvalidInferenceRequestException:
                batcher.Statistics.RecordFailure(timeProvider.GetElapsedTime(started), requests);
                return Failed(StatusCode.InvalidArgument, exception.Message);
            case QueueFullException full:
                return Failed(StatusCode.ResourceExhausted, full.Message, full.RetryAfter);
            case BatcherStoppedException:
                return Failed(StatusCode.Unavailable, exception.Message, TimeSpan.FromMilliseconds(100));
            case DeadlineExceededException:
                return Failed(StatusCode.DeadlineExceeded, exception.Message);
            case OnnxRuntimeException or InvalidOperationException or ObjectDisposedException:
                LogInferenceFailed(logger, model.Name, model.Version, requestId, exception);
                return Failed(StatusCode.Internal, $"inference failed: {exception.Message}");
            default:
                return null;
        }
    }

    private static List<InferTensor> ToTensors(InferItem item)
    {
        var tensors = new List<InferTensor>(item.Inputs.Count);
        foreach (var tensor in item.Inputs)
        {
            if (!DataTypes.TryFromWire(tensor.Datatype, out var type))
            {
                throw new InferenceRequestException($"input '{tensor.Name}': unknown datatype {tensor.Datatype} (expected one of {DataTypes.AllNames})");
            }
            tensors.Add(new InferTensor(tensor.Name, type, [.. tensor.Shape], tensor.Data.Memory));
        }
        return tensors;
    }

    private static List<BatchInput> ToBatchInputs(List<InferTensor> tensors)
    {
        var inputs = new List<BatchInput>(tensors.Count);
        foreach (var tensor in tensors)
        {
            var elementType = (TensorElementType)tensor.DataType.ToOnnxElementType();
            inputs.Add(tensor.DataType == Inference.Protocol.DataType.Bytes
                ? new BatchInput(tensor.Name, elementType, tensor.Shape, ReadOnlyMemory<byte>.Empty,
                    BytesCodec.DecodeStrings($"input '{tensor.Name}'", tensor.Data.Span, tensor.ElementCount))
                : new BatchInput(tensor.Name, elementType, tensor.Shape, tensor.Data));
        }
        return inputs;
    }

    private IEnumerable<LoadedModel> Select(string model, long version) =>
        host.Models
            .Where(m => (model.Length == 0 || m.Name == model) && (version == 0 || m.Version == version))
            .OrderBy(m => m.Name, StringComparer.Ordinal).ThenBy(m => m.Version);

    private static Inference.Protocol.Wire.Duration Wire(DurationTotal total) => new() { Count = total.Count, Ns = total.Nanoseconds };

    private static InferItemResult Failed(StatusCode code, string message, TimeSpan? retryAfter = null) => new()
    {
        Error = new ItemError
        {
            Code = (int)code,
            Message = message,
            RetryAfterMs = retryAfter is { } delay ? (int)Math.Ceiling(delay.TotalMilliseconds) : 0,
        },
    };

    private static RpcException Unavailable(string message, int retryAfterMs)
    {
        var trailers = new Metadata { { WorkerProtocol.RetryAfterTrailer, retryAfterMs.ToString(CultureInfo.InvariantCulture) } };
        return new RpcException(new Status(StatusCode.Unavailable, message), trailers);
    }

    [LoggerMessage(EventId = 50, Level = LogLevel.Error, Message = "Inference on {Model} version {Version} failed (request {RequestId})")]
    private static partial void LogInferenceFailed(ILogger logger, string model, long version, string requestId, Exception exception);
}

/// <summary>The protocol signature of each loaded session, derived once per session (the gRPC service itself is per call).</summary>
internal sealed class ModelSignatures
{
    private readonly ConditionalWeakTable<InferenceSession, ModelSignature> _signatures = new();

    public ModelSignature Of(InferenceSession session) => _signatures.GetValue(session, static s => new(
        [.. s.Inputs.Select(Spec)], [.. s.Outputs.Select(Spec)]));

    private static TensorSpec Spec(TensorMetadata metadata) =>
        new(metadata.Name,
            DataTypes.TryFromOnnxElementType((int)metadata.ElementType, out var type) ? type
                : throw new InvalidOperationException($"tensor '{metadata.Name}' has element type {metadata.ElementType}, which the protocol cannot carry"),
            [.. metadata.Shape]);
}
