using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Platform.Batching;
using Platform.Inference.Protocol;
using Platform.Inference.Protocol.Wire;
using Platform.ModelRegistry;
using Platform.OnnxRuntime;

namespace Platform.ModelWorker;

/// <summary>
/// The worker's HTTP surface: <c>POST /v1/infer</c> (protobuf <see cref="WorkerInferRequest"/> →
/// <see cref="WorkerInferResponse"/>, or <see cref="WorkerError"/> with the HTTP status), and per-model readiness.
/// </summary>
internal static partial class InferenceEndpoints
{
    public const string ProtobufContentType = "application/x-protobuf";

    public static void MapInferenceEndpoints(this WebApplication app)
    {
        app.MapPost("/v1/infer", InferAsync);
        app.MapGet("/v1/models", (ModelHost host, WorkerIdentity identity) => Results.Ok(new
        {
            instance = identity.InstanceId,
            models = host.Models.OrderBy(m => m.Name, StringComparer.Ordinal).ThenBy(m => m.Version).Select(Describe),
        }));
        app.MapGet("/v1/models/{name}/versions/{version}/ready", (string name, string version, ModelHost host) =>
        {
            if (!long.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number < 1)
            {
                return Results.BadRequest(new { error = $"version: '{version}' is not a positive integer" });
            }
            var model = host.Find(name, number);
            return model is null
                ? Results.NotFound(new { error = $"model '{name}' version {number} is not active on this worker" })
                : Results.Json(Describe(model), statusCode: model.State == ModelLoadState.Ready ? 200 : 503);
        });
    }

    private static object Describe(LoadedModel m) => new
    {
        name = m.Name,
        version = m.Version,
        sha256 = m.Sha256,
        state = m.State.ToString().ToLowerInvariant(),
        ready = m.State == ModelLoadState.Ready,
        reason = m.FailureReason,
        executionProvider = m.Session?.ExecutionProvider,
        executionProviderFallbackReason = m.Session?.ExecutionProviderFallbackReason,
        batching = m.Batcher?.ModelSupportsBatching,
        queueDepth = m.Batcher?.QueueDepth,
        settings = m.Settings,
    };

    private static async Task InferAsync(HttpContext context, ModelHost host, IActiveModelsView registry, WorkerIdentity identity, IOptions<WorkerOptions> options,
        TimeProvider timeProvider, ILoggerFactory loggers)
    {
        var cancellationToken = context.RequestAborted;
        if (context.Request.ContentType is { } contentType && !contentType.StartsWith(ProtobufContentType, StringComparison.OrdinalIgnoreCase))
        {
            await WriteErrorAsync(context, StatusCodes.Status415UnsupportedMediaType, $"Content-Type: expected {ProtobufContentType}, got '{contentType}'");
            return;
        }
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = options.Value.MaxRequestBodyBytes;
        }

        WorkerInferRequest request;
        try
        {
            request = await ReadRequestAsync(context.Request, cancellationToken);
        }
        catch (InvalidProtocolBufferException ex)
        {
            await WriteErrorAsync(context, StatusCodes.Status400BadRequest, $"body: not a valid WorkerInferRequest: {ex.Message}");
            return;
        }
        catch (BadHttpRequestException ex)
        {
            await WriteErrorAsync(context, ex.StatusCode, $"body: {ex.Message}");
            return;
        }

        if (string.IsNullOrEmpty(request.Model))
        {
            await WriteErrorAsync(context, StatusCodes.Status400BadRequest, "model: required");
            return;
        }
        if (request.Version < 0)
        {
            await WriteErrorAsync(context, StatusCodes.Status400BadRequest, $"version: {request.Version} is negative (0 means the highest active version)");
            return;
        }

        var model = host.Find(request.Model, request.Version);
        if (model is null && registry.Current.Find(request.Model, request.Version == 0 ? null : request.Version) is { } pending)
        {
            // Active in the registry but not picked up by the loader yet: a moment away, not unknown.
            await WriteErrorAsync(context, StatusCodes.Status503ServiceUnavailable,
                $"model '{pending.Name}' version {pending.Version.Version} is about to load on this worker", TimeSpan.FromSeconds(1));
            return;
        }
        if (model is null)
        {
            await WriteErrorAsync(context, StatusCodes.Status404NotFound, request.Version == 0
                ? $"model '{request.Model}' has no active version on this worker"
                : $"model '{request.Model}' version {request.Version} is not active on this worker");
            return;
        }
        if (model.State != ModelLoadState.Ready || model.Batcher is not { } batcher)
        {
            await WriteErrorAsync(context, StatusCodes.Status503ServiceUnavailable, model.State == ModelLoadState.Failed
                ? $"model '{model.Name}' version {model.Version} failed to load on this worker: {model.FailureReason}"
                : $"model '{model.Name}' version {model.Version} is still loading", TimeSpan.FromSeconds(1));
            return;
        }

        Activity.Current?.SetTag("model", model.Name);
        Activity.Current?.SetTag("model.version", model.Version);
        try
        {
            var work = new InferenceWork(
                ToInputs(request),
                request.Outputs.Count > 0 ? request.Outputs : null,
                request.DeadlineUnixMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(request.DeadlineUnixMs) : null);
            var outcome = await batcher.InferAsync(work, cancellationToken);
            var response = new WorkerInferResponse
            {
                BatchSize = outcome.BatchRows,
                QueueMicros = (long)outcome.QueueTime.TotalMicroseconds,
                ComputeMicros = (long)outcome.ComputeTime.TotalMicroseconds,
                WorkerInstance = identity.InstanceId,
            };
            foreach (var output in outcome.Outputs)
            {
                var tensor = new WireTensor
                {
                    Name = output.Name,
                    Datatype = RequestValidator.TypeName(output.ElementType),
                    Data = output.Strings is { } strings
                        ? UnsafeByteOperations.UnsafeWrap(RequestValidator.EncodeStrings(strings))
                        // The batcher hands each request its own copy, so wrapping it without another copy is safe.
                        : UnsafeByteOperations.UnsafeWrap(output.Data),
                };
                tensor.Shape.Add(output.Shape);
                response.Outputs.Add(tensor);
            }
            await WriteMessageAsync(context, StatusCodes.Status200OK, response);
        }
        catch (InvalidInferenceRequestException ex)
        {
            await WriteErrorAsync(context, StatusCodes.Status400BadRequest, ex.Message);
        }
        catch (QueueFullException ex)
        {
            await WriteErrorAsync(context, StatusCodes.Status429TooManyRequests, ex.Message, ex.RetryAfter);
        }
        catch (BatcherStoppedException ex)
        {
            await WriteErrorAsync(context, StatusCodes.Status503ServiceUnavailable, ex.Message, TimeSpan.FromMilliseconds(100));
        }
        catch (DeadlineExceededException ex)
        {
            await WriteErrorAsync(context, StatusCodes.Status504GatewayTimeout, ex.Message);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The caller went away; nobody reads an answer.
        }
        catch (Exception ex) when (ex is OnnxRuntimeException or InvalidOperationException or ObjectDisposedException)
        {
            LogInferenceFailed(loggers.CreateLogger("Platform.ModelWorker.Inference"), model.Name, model.Version, request.RequestId, ex);
            await WriteErrorAsync(context, StatusCodes.Status500InternalServerError, $"inference failed: {ex.Message}");
        }
    }

    private static async Task<WorkerInferRequest> ReadRequestAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        var reader = request.BodyReader;
        while (true)
        {
            var read = await reader.ReadAsync(cancellationToken);
            if (read.IsCompleted || read.IsCanceled)
            {
                try
                {
                    // Parsing copies tensor bytes into ByteStrings, so the pipe's buffers can be released right after.
                    return WorkerInferRequest.Parser.ParseFrom(read.Buffer);
                }
                finally
                {
                    reader.AdvanceTo(read.Buffer.End);
                }
            }
            reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
        }
    }

    private static List<BatchInput> ToInputs(WorkerInferRequest request)
    {
        var inputs = new List<BatchInput>(request.Inputs.Count);
        foreach (var tensor in request.Inputs)
        {
            if (!DataTypes.TryParse(tensor.Datatype, out var dataType))
            {
                throw new InvalidInferenceRequestException(
                    $"input '{tensor.Name}': unknown datatype '{tensor.Datatype}' (expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES)");
            }
            var shape = tensor.Shape.ToArray();
            var elementType = (TensorElementType)dataType.ToOnnxElementType();
            if (dataType == DataType.Bytes)
            {
                long count = 1;
                foreach (var dim in shape)
                {
                    if (dim < 0)
                    {
                        throw new InvalidInferenceRequestException($"input '{tensor.Name}': shape {RequestValidator.FormatShape(shape)} has a negative dimension");
                    }
                    count = dim == 0 ? 0 : count > int.MaxValue / dim ? int.MaxValue : count * dim;
                }
                var strings = RequestValidator.DecodeStrings(tensor.Name, tensor.Data.Span, count);
                inputs.Add(new BatchInput(tensor.Name, elementType, shape, ReadOnlyMemory<byte>.Empty, strings));
            }
            else
            {
                inputs.Add(new BatchInput(tensor.Name, elementType, shape, tensor.Data.Memory));
            }
        }
        return inputs;
    }

    private static Task WriteErrorAsync(HttpContext context, int status, string message, TimeSpan? retryAfter = null)
    {
        var error = new WorkerError { Code = status, Message = message };
        if (retryAfter is { } delay)
        {
            error.RetryAfterMs = (int)Math.Ceiling(delay.TotalMilliseconds);
            // Retry-After has whole seconds only; the precise value is in the body.
            context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(delay.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        }
        return WriteMessageAsync(context, status, error);
    }

    private static async Task WriteMessageAsync(HttpContext context, int status, IMessage message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = ProtobufContentType;
        var size = message.CalculateSize();
        context.Response.ContentLength = size;
        // Serialise straight into the response pipe's memory. (Protobuf's IBufferWriter overload calls Advance(0)
        // before its first GetSpan, which Kestrel's response writer rejects.)
        var writer = context.Response.BodyWriter;
        message.WriteTo(writer.GetSpan(size)[..size]);
        writer.Advance(size);
        await context.Response.BodyWriter.FlushAsync(context.RequestAborted);
    }

    [LoggerMessage(EventId = 50, Level = LogLevel.Error, Message = "Inference on {Model} version {Version} failed (request {RequestId})")]
    private static partial void LogInferenceFailed(ILogger logger, string model, long version, string requestId, Exception exception);
}

/// <summary>This replica's identity as the AppHost names it (<c>service.instance.id</c>).</summary>
internal sealed record WorkerIdentity(string InstanceId)
{
    public static WorkerIdentity From(IConfiguration configuration) => new(Platform.WorkerDiscovery.WorkerAnnouncer.InstanceIdFrom(configuration));
}
