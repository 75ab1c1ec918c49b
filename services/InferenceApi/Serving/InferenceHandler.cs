using System.Buffers;
using System.Globalization;
using CommunityToolkit.HighPerformance.Buffers;
using Microsoft.Extensions.Options;
using Platform.Inference.OpenInference;
using Platform.Inference.Protocol;
using Platform.InferenceApi.Tenancy;

namespace Platform.InferenceApi.Serving;

/// <summary>
/// <c>POST /v2/models/{name}[/versions/{v}]/infer</c> over REST: reads and decodes the JSON (and binary tensor data)
/// body, runs it through <see cref="InferencePipeline"/> and encodes the answer as JSON and/or binary tensor data.
/// </summary>
public sealed class InferenceHandler(InferencePipeline pipeline, IOptions<InferenceApiOptions> options, TimeProvider timeProvider)
{
    /// <summary>Response header telling whether the answer came from the cache: "hit" or "miss" (absent when the cache was not used).</summary>
    public const string CacheHeader = "Platform-Cache";

    /// <summary>
    /// W3C Server-Timing on every 200 (see <see cref="RequestTiming.Format"/>), followed by enforcement's <c>auth</c>,
    /// <c>admit</c> and <c>record</c>. Lets a client see where a slow request spent its time without access to the servers.
    /// </summary>
    public const string ServerTimingHeader = "Server-Timing";

    /// <summary>Handles one request and writes the whole response.</summary>
    public async Task HandleAsync(HttpContext context, string model, string? versionText)
    {
        ArgumentNullException.ThrowIfNull(context);
        var started = timeProvider.GetTimestamp();
        var cancellationToken = context.RequestAborted;
        var status = 499;
        long? answeredBy = null;
        byte[]? body = null;
        try
        {
            var (served, notFound) = await pipeline.ResolveAsync(model, versionText, cancellationToken);
            if (served is null)
            {
                status = await WriteErrorAsync(context, notFound!.Status, notFound.Message);
                return;
            }

            if (context.Request.Headers.ContentEncoding is { Count: > 0 } coding && !IsIdentity(coding))
            {
                // The decompression middleware takes the codings it knows off the request; anything left is unreadable.
                status = await WriteErrorAsync(context, 415, $"Content-Encoding: '{coding}' is not supported; send the body uncompressed or as gzip, deflate or br");
                return;
            }

            var length = 0;
            var timing = new RequestTiming(started) { Arrived = context.Features.Get<UsageRecording>()?.Arrived ?? 0 };
            try
            {
                (body, length) = await ReadBodyAsync(context.Request, options.Value.MaxRequestBytes, cancellationToken);
            }
            catch (InvalidDataException ex)
            {
                // The decompression stream's verdict on a body that is not what its Content-Encoding says.
                status = await WriteErrorAsync(context, 400, $"body: the compressed request body could not be decoded ({ex.Message})");
                return;
            }

            timing.Read = timeProvider.GetTimestamp();
            if (body is null)
            {
                status = await WriteErrorAsync(context, 413, $"the request body exceeds {options.Value.MaxRequestBytes} bytes");
                return;
            }

            var jsonLength = InferRequestReader.ParseHeaderContentLength(
                context.Request.Headers[InferRequestReader.HeaderContentLengthHeader].FirstOrDefault(), length);
            var decoded = InferRequestReader.Read(body.AsMemory(0, length), jsonLength);
            var (answer, failure) = await pipeline.RunAsync(served, versionText is not null, decoded, context.Features.Get<InferenceUsageFeature>(), timing, cancellationToken);
            if (answer is null)
            {
                status = await WriteErrorAsync(context, failure!.Status, failure.Message, failure.RetryAfterMs);
                return;
            }

            if (answer.CacheHit is { } hit)
            {
                context.Response.Headers[CacheHeader] = hit ? "hit" : "miss";
            }

            answeredBy = answer.Model.Version;
            status = await WriteResponseAsync(context, answer, timing, timeProvider);
        }
        catch (InferenceRequestException ex)
        {
            status = await WriteErrorAsync(context, 400, ex.Message);
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
        catch (Exception) when (context.Features.Get<UsageRecording>() is { Failed: true } && !context.Response.HasStarted)
        {
            // The answer was ready but its usage record could not be made durable: the client must not get it.
            context.Response.Clear();
            status = await WriteErrorAsync(context, 503, "the usage record could not be stored; the request was not charged, retry shortly", 1000);
        }
        finally
        {
            if (body is not null)
            {
                ArrayPool<byte>.Shared.Return(body);
            }

            pipeline.Finished(model, answeredBy, status, started);
        }
    }

    private static async ValueTask<int> WriteResponseAsync(HttpContext context, InferenceAnswer answer, RequestTiming timing, TimeProvider timeProvider)
    {
        var request = answer.Request;
        var outputs = answer.Outputs;
        var binary = new bool[outputs.Count];
        var estimate = 256;
        for (var i = 0; i < outputs.Count; i++)
        {
            binary[i] = InferResponseWriter.IsBinary(request, outputs[i].Name);
            // JSON text of a number is roughly three times its binary size.
            estimate += outputs[i].Data.Length * (binary[i] ? 1 : 3);
        }

        // Pooled: every answer is encoded into a buffer that lives until its bytes are written.
        using var buffer = new ArrayPoolBufferWriter<byte>(estimate);
        var jsonLength = InferResponseWriter.Write(
            buffer, new InferResponse(answer.Model.Name, answer.Model.Version.ToString(CultureInfo.InvariantCulture), request.Id, answer.Outputs), binary);
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
        timing.Encoded = timeProvider.GetTimestamp();
        var usage = context.Features.Get<UsageRecording>();
        if (usage is not null)
        {
            await usage.RecordAsync(200);
        }

        response.Headers[ServerTimingHeader] = timing.Format(timeProvider, answer.Worker, usage?.Timing);

        await response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted);
        return 200;
    }

    /// <summary>Writes <c>{"error": message}</c> with the status (and Retry-After for 429/503).</summary>
    public static async Task<int> WriteErrorAsync(HttpContext context, int status, string message, int retryAfterMs = 0)
    {
        ArgumentNullException.ThrowIfNull(context);
        var response = context.Response;
        if (response.HasStarted)
        {
            return status;
        }

        if (context.Features.Get<UsageRecording>() is { Failed: false } usage)
        {
            try
            {
                await usage.RecordAsync(status);
            }
            catch (Exception ex) when (ex is not OperationCanceledException and not AdmissionRefusedException)
            {
                // Nothing was served, so the refusal may go out without its record (it is logged by enforcement).
            }
        }

        response.StatusCode = status;
        response.ContentType = "application/json";
        if (context.Features.Get<UsageRecording>()?.Timing is { } timing)
        {
            response.Headers[ServerTimingHeader] = timing.ToString();
        }

        if (status is 429 or 503)
        {
            response.Headers.RetryAfter = RetryAfterSeconds(retryAfterMs).ToString(CultureInfo.InvariantCulture);
        }

        var buffer = new ArrayBufferWriter<byte>(128 + message.Length);
        InferResponseWriter.WriteError(buffer, message);
        response.ContentLength = buffer.WrittenCount;
        await response.Body.WriteAsync(buffer.WrittenMemory, CancellationToken.None);
        return status;
    }

    /// <summary>Retry-After is whole seconds: round up so a client never comes back early, and say at least 1.</summary>
    public static int RetryAfterSeconds(int retryAfterMs) => Math.Max(1, (retryAfterMs + 999) / 1000);

    private static bool IsIdentity(Microsoft.Extensions.Primitives.StringValues coding) =>
        coding.Count == 1 && string.Equals(coding[0]?.Trim(), "identity", StringComparison.OrdinalIgnoreCase);

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
}
