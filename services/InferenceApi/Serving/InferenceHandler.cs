using System.Buffers;
using System.Globalization;
using Google.Protobuf;
using Microsoft.Extensions.Options;
using Platform.Inference.OpenInference;
using Platform.Inference.Protocol;
using Platform.Inference.Protocol.Wire;
using Platform.Inference.Routing;
using Platform.InferenceApi.Tenancy;

namespace Platform.InferenceApi.Serving;

/// <summary>
/// <c>POST /v2/models/{name}[/versions/{v}]/infer</c>: decode and validate at the edge (4xx naming the input), answer
/// from the cache when allowed, otherwise run on a worker and encode the answer as JSON and/or binary tensor data.
/// </summary>
public sealed partial class InferenceHandler(
    ServedModelCatalog catalog,
    WorkerClient workers,
    ResponseCache cache,
    InferenceMetrics metrics,
    FeatureEnricher enricher,
    IOptions<InferenceApiOptions> options,
    TimeProvider timeProvider,
    ILogger<InferenceHandler> logger)
{
    /// <summary>Response header telling whether the answer came from the cache: "hit" or "miss" (absent when the cache was not used).</summary>
    public const string CacheHeader = "Platform-Cache";

    /// <summary>
    /// W3C Server-Timing on every 200: <c>read</c> (body), <c>decode</c> (parse + validate), <c>enrich</c> (feature
    /// lookup inside <c>decode</c>, when bound inputs were filled), <c>cache</c> (lookup),
    /// <c>worker</c> (round trip to the replica, retries included), <c>queue</c> and <c>compute</c> (reported by the
    /// worker, inside <c>worker</c>), <c>batch</c> (rows ONNX Runtime ran together; desc only), <c>encode</c>, <c>total</c>.
    /// Milliseconds. Lets a client see where a slow request spent its time without access to the servers.
    /// </summary>
    public const string ServerTimingHeader = "Server-Timing";

    /// <summary>Handles one request and writes the whole response.</summary>
    public async Task HandleAsync(HttpContext context, string model, string? versionText)
    {
        ArgumentNullException.ThrowIfNull(context);
        var started = timeProvider.GetTimestamp();
        var cancellationToken = context.RequestAborted;
        var status = 499;
        byte[]? body = null;
        try
        {
            long? version = null;
            if (versionText is not null)
            {
                if (!long.TryParse(versionText, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed))
                {
                    status = await WriteErrorAsync(context, 404, $"model '{model}' has no version '{versionText}'");
                    return;
                }

                version = parsed;
            }

            var served = await catalog.FindAsync(model, version, cancellationToken);
            if (served is null)
            {
                status = await WriteErrorAsync(context, 404, NotFoundMessage(model, version));
                return;
            }

            var length = 0;
            var timing = new RequestTiming(started);
            (body, length) = await ReadBodyAsync(context.Request, options.Value.MaxRequestBytes, cancellationToken);
            timing.Read = timeProvider.GetTimestamp();
            if (body is null)
            {
                status = await WriteErrorAsync(context, 413, $"the request body exceeds {options.Value.MaxRequestBytes} bytes");
                return;
            }

            var jsonLength = InferRequestReader.ParseHeaderContentLength(
                context.Request.Headers[InferRequestReader.HeaderContentLengthHeader].FirstOrDefault(), length);
            var decoded = InferRequestReader.Read(body.AsMemory(0, length), jsonLength);
            var enrichStarted = timeProvider.GetTimestamp();
            var request = await enricher.EnrichAsync(decoded, served, cancellationToken);
            timing.Enrich = ReferenceEquals(request, decoded) ? default : (enrichStarted, timeProvider.GetTimestamp());
            InferRequestValidator.Validate(request, served.Signature, model);
            timing.Decoded = timeProvider.GetTimestamp();
            var usage = context.Features.Get<InferenceUsageFeature>();
            if (usage is not null)
            {
                usage.RequestId = request.Id;
                usage.InputElements = request.Inputs.Sum(i => i.Shape.Aggregate(1L, (product, dim) => product * dim));
            }

            var timeout = request.Parameters.TimeoutMicroseconds is { } micros
                ? TimeSpan.FromTicks(Math.Min(micros * 10, options.Value.MaxTimeout.Ticks))
                : options.Value.DefaultTimeout;
            var deadline = timeProvider.GetUtcNow() + timeout;

            var useCache = request.Parameters.Cache ?? served.Settings.CacheEnabled;
            WorkerInferResponse? result = null;
            if (useCache)
            {
                result = await cache.GetAsync(ResponseCache.Key(model, served.Version, request), cancellationToken);
                context.Response.Headers[CacheHeader] = result is null ? "miss" : "hit";
                if (result is null)
                {
                    metrics.CacheMiss(model);
                }
                else
                {
                    metrics.CacheHit(model);
                    usage?.Cached = true;
                }
            }

            timing.Cached = timeProvider.GetTimestamp();

            if (result is null)
            {
                var (response, answeredBy, error) = await RunAsync(request, served, pinned: version is not null, deadline, cancellationToken);
                if (error is not null)
                {
                    status = await WriteErrorAsync(context, error.Code, error.Message, error.RetryAfterMs);
                    return;
                }

                result = response!;
                served = answeredBy;
                timing.Worked = timeProvider.GetTimestamp();
                if (useCache)
                {
                    await cache.SetAsync(ResponseCache.Key(model, served.Version, request), result,
                        TimeSpan.FromSeconds(served.Settings.CacheTtlSeconds), cancellationToken);
                }
            }

            if (usage is not null)
            {
                usage.Version = served.Version;
                usage.BatchSize = result.BatchSize;
            }

            status = await WriteResponseAsync(context, request, served, result, timing, timeProvider);
        }
        catch (InferenceRequestException ex)
        {
            status = await WriteErrorAsync(context, 400, ex.Message);
        }
        catch (FeatureEnrichmentUnavailableException ex)
        {
            status = await WriteErrorAsync(context, ex.StatusCode, ex.Message, (int)ex.RetryAfter.TotalMilliseconds);
        }
        catch (BadHttpRequestException ex)
        {
            // Kestrel's own limits (body too large, client too slow) are the client's doing.
            status = await WriteErrorAsync(context, ex.StatusCode, ex.Message);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            status = 499; // the client went away; nothing to answer
        }
        finally
        {
            if (body is not null)
            {
                ArrayPool<byte>.Shared.Return(body);
            }

            metrics.Request(model, status, timeProvider.GetElapsedTime(started));
        }
    }

    private async Task<(WorkerInferResponse? Response, ServedModel AnsweredBy, WorkerError? Error)> RunAsync(
        InferRequest request, ServedModel served, bool pinned, DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        // An unversioned request may fall back to an older active version when the newest is not loaded on any worker
        // yet (just activated) or was just retired: traffic switches versions without failing requests.
        IReadOnlyList<ServedModel> candidates = pinned ? [served] : [served, .. catalog.ActiveVersions(served.Name).Where(m => m.Version != served.Version)];
        WorkerError? lastError = null;
        foreach (var candidate in candidates)
        {
            if (candidate != served && !SignatureAccepts(request, candidate))
            {
                continue;
            }

            var call = await workers.InferAsync(ToWire(request, candidate), deadline, cancellationToken);
            if (call.Response is not null)
            {
                return (call.Response, candidate, null);
            }

            var error = call.Error!;
            if (error.Code == 404)
            {
                // The registry says this version is active, so a worker without it is behind, not the client wrong.
                error = new WorkerError
                {
                    Code = 503,
                    Message = $"model '{candidate.Name}' version {candidate.Version} is not loaded on any model worker yet",
                    RetryAfterMs = 1000,
                };
            }

            LogWorkerError(logger, candidate.Name, candidate.Version, error.Code, error.Message, call.Attempts);
            if (pinned || error.Code != 503)
            {
                return (null, candidate, error);
            }

            lastError = error;
        }

        return (null, served, lastError);
    }

    private static bool SignatureAccepts(InferRequest request, ServedModel model)
    {
        try
        {
            InferRequestValidator.Validate(request, model.Signature, model.Name);
            return true;
        }
        catch (InferenceRequestException)
        {
            return false;
        }
    }

    private static WorkerInferRequest ToWire(InferRequest request, ServedModel model)
    {
        var wire = new WorkerInferRequest { Model = model.Name, Version = model.Version, RequestId = request.Id ?? string.Empty };
        foreach (var input in request.Inputs)
        {
            var tensor = new WireTensor
            {
                Name = input.Name,
                Datatype = input.DataType.ToProtocolName(),
                // Wraps the request body: serialising the message is the only copy on the way to the worker.
                Data = UnsafeByteOperations.UnsafeWrap(input.Data),
            };
            tensor.Shape.AddRange(input.Shape);
            wire.Inputs.Add(tensor);
        }

        foreach (var output in request.Outputs)
        {
            wire.Outputs.Add(output.Name);
        }

        return wire;
    }

    private static async Task<int> WriteResponseAsync(
        HttpContext context, InferRequest request, ServedModel served, WorkerInferResponse result, RequestTiming timing, TimeProvider timeProvider)
    {
        var outputs = new List<InferTensor>(result.Outputs.Count);
        if (request.Outputs.Count > 0)
        {
            foreach (var requested in request.Outputs)
            {
                var wire = result.Outputs.FirstOrDefault(o => o.Name == requested.Name);
                if (wire is null)
                {
                    return await WriteErrorAsync(context, 502, $"the model worker did not return output '{requested.Name}'");
                }

                outputs.Add(FromWire(wire));
            }
        }
        else
        {
            outputs.AddRange(result.Outputs.Select(FromWire));
        }

        var binary = outputs.Select(o => InferResponseWriter.IsBinary(request, o.Name)).ToArray();
        var estimate = 256;
        for (var i = 0; i < outputs.Count; i++)
        {
            // JSON text of a number is roughly three times its binary size.
            estimate += outputs[i].Data.Length * (binary[i] ? 1 : 3);
        }

        var buffer = new ArrayBufferWriter<byte>(estimate);
        var jsonLength = InferResponseWriter.Write(
            buffer, new InferResponse(served.Name, served.Version.ToString(CultureInfo.InvariantCulture), request.Id, outputs), binary);
        var response = context.Response;
        response.StatusCode = 200;
        if (buffer.WrittenCount > jsonLength)
        {
            response.ContentType = "application/octet-stream";
            response.Headers[InferRequestReader.HeaderContentLengthHeader] = jsonLength.ToString(CultureInfo.InvariantCulture);
        }
        else
        {
            response.ContentType = "application/json";
        }

        response.ContentLength = buffer.WrittenCount;
        response.Headers[ServerTimingHeader] = timing.Format(timeProvider, result);
        await response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted);
        return 200;
    }

    private static InferTensor FromWire(WireTensor wire) =>
        new(wire.Name,
            DataTypes.TryParse(wire.Datatype, out var type) ? type : throw new InvalidOperationException($"worker sent unknown datatype '{wire.Datatype}'"),
            [.. wire.Shape],
            wire.Data.Memory);

    /// <summary>Writes <c>{"error": message}</c> with the status (and Retry-After for 429/503).</summary>
    public static async Task<int> WriteErrorAsync(HttpContext context, int status, string message, int retryAfterMs = 0)
    {
        ArgumentNullException.ThrowIfNull(context);
        var response = context.Response;
        if (response.HasStarted)
        {
            return status;
        }

        response.StatusCode = status;
        response.ContentType = "application/json";
        if (status is 429 or 503)
        {
            // Retry-After is whole seconds; round up so a client never comes back early.
            var seconds = Math.Max(1, (retryAfterMs + 999) / 1000);
            response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        }

        var buffer = new ArrayBufferWriter<byte>(128 + message.Length);
        InferResponseWriter.WriteError(buffer, message);
        response.ContentLength = buffer.WrittenCount;
        await response.Body.WriteAsync(buffer.WrittenMemory, CancellationToken.None);
        return status;
    }

    /// <summary>404 message for an unknown model or version.</summary>
    public string NotFoundMessage(string model, long? version) =>
        version is null || catalog.ActiveVersions(model).Count == 0
            ? $"unknown model '{model}' (no active version)"
            : $"model '{model}' has no active version {version}";

    /// <summary>Reads the whole body into a pooled buffer; null buffer when it exceeds <paramref name="max"/>.</summary>
    private static async Task<(byte[]? Buffer, int Length)> ReadBodyAsync(HttpRequest request, long max, CancellationToken cancellationToken)
    {
        if (request.ContentLength > max)
        {
            return (null, 0);
        }

        var buffer = ArrayPool<byte>.Shared.Rent((int)(request.ContentLength ?? 16 * 1024) + 1);
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (length >= max)
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                        return (null, 0);
                    }

                    var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min(max + 1, (long)buffer.Length * 2));
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                var read = await request.Body.ReadAsync(buffer.AsMemory(length), cancellationToken);
                if (read == 0)
                {
                    break;
                }

                length += read;
            }
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }

        if (length > max)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            return (null, 0);
        }

        return (buffer, length);
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning, Message = "Model {Model} version {Version}: worker error {Status} after {Attempts} attempts: {Reason}")]
    private static partial void LogWorkerError(ILogger logger, string model, long version, int status, string reason, int attempts);

    /// <summary>Timestamps of one request's phases (<see cref="TimeProvider.GetTimestamp"/>); 0 = phase skipped.</summary>
    private sealed class RequestTiming(long started)
    {
        public long Read;
        public long Decoded;
        public long Cached;
        public long Worked;
        public (long From, long To) Enrich;

        public string Format(TimeProvider clock, WorkerInferResponse result)
        {
            var now = clock.GetTimestamp();
            var builder = new System.Text.StringBuilder(160);
            Append(builder, "read", started, Read, clock);
            Append(builder, "decode", Read, Decoded, clock);
            Append(builder, "enrich", Enrich.From, Enrich.To, clock);
            Append(builder, "cache", Decoded, Cached, clock);
            if (Worked != 0)
            {
                Append(builder, "worker", Cached, Worked, clock);
                builder.Append(CultureInfo.InvariantCulture, $"queue;dur={result.QueueMicros / 1000.0:0.###}, compute;dur={result.ComputeMicros / 1000.0:0.###}, batch;desc={result.BatchSize}, ");
            }

            Append(builder, "encode", Worked != 0 ? Worked : Cached, now, clock);
            Append(builder, "total", started, now, clock);
            return builder.ToString(0, builder.Length - 2);
        }

        private static void Append(System.Text.StringBuilder builder, string name, long from, long to, TimeProvider clock)
        {
            if (from != 0 && to != 0)
            {
                builder.Append(CultureInfo.InvariantCulture, $"{name};dur={clock.GetElapsedTime(from, to).TotalMilliseconds:0.###}, ");
            }
        }
    }
}
