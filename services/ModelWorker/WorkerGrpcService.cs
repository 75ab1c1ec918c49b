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
            response.Results.AddRange(await Task.WhenAll(request.Items.Select(item =>
                RunAsync(model, batcher, signature, item, callDeadline, context.CancellationToken))));
        }
        return response;
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
            var deadline = item.DeadlineUnixMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(item.DeadlineUnixMs) : callDeadline;
            var work = new InferenceWork(ToBatchInputs(tensors), item.Outputs.Count > 0 ? item.Outputs : null, deadline);
            var outcome = await batcher.InferAsync(work, cancellationToken);
            var result = new InferItemResult
            {
                BatchSize = outcome.BatchRows,
                QueueMicros = (long)outcome.QueueTime.TotalMicroseconds,
                ComputeMicros = (long)outcome.ComputeTime.TotalMicroseconds,
            };
            foreach (var output in outcome.Outputs)
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
                result.Outputs.Add(tensor);
            }
            return result;
        }
        catch (Exception ex) when (ex is InferenceRequestException or InvalidInferenceRequestException)
        {
            batcher.Statistics.RecordFailure(timeProvider.GetElapsedTime(started));
            return Failed(StatusCode.InvalidArgument, ex.Message);
        }
        catch (QueueFullException ex)
        {
            return Failed(StatusCode.ResourceExhausted, ex.Message, ex.RetryAfter);
        }
        catch (BatcherStoppedException ex)
        {
            return Failed(StatusCode.Unavailable, ex.Message, TimeSpan.FromMilliseconds(100));
        }
        catch (DeadlineExceededException ex)
        {
            return Failed(StatusCode.DeadlineExceeded, ex.Message);
        }
        catch (Exception ex) when (ex is OnnxRuntimeException or InvalidOperationException or ObjectDisposedException)
        {
            LogInferenceFailed(logger, model.Name, model.Version, item.RequestId, ex);
            return Failed(StatusCode.Internal, $"inference failed: {ex.Message}");
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
