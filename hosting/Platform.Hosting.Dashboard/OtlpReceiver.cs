using System.Buffers;
using System.IO.Compression;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Platform.Hosting.Telemetry;
using Platform.Hosting.Telemetry.Otlp.Collector.Logs;
using Platform.Hosting.Telemetry.Otlp.Collector.Metrics;
using Platform.Hosting.Telemetry.Otlp.Collector.Trace;

namespace Platform.Hosting.Dashboard;

/// <summary>
/// OTLP/HTTP with protobuf bodies (the protocol the AppHost tells services to use): <c>POST /v1/traces</c>,
/// <c>/v1/logs</c>, <c>/v1/metrics</c>, optionally gzip-encoded. The API key check is done by the server's
/// middleware before these run.
/// </summary>
internal sealed class OtlpReceiver(TelemetryStore store, OtlpConverter converter, long maxBytes, ILogger logger)
{
    private const string ProtobufContentType = "application/x-protobuf";

    public void Map(WebApplication app)
    {
        app.MapPost("/v1/traces", context => HandleAsync(context, ExportTraceServiceRequest.Parser, request =>
        {
            converter.Ingest(request, store);
            return new ExportTraceServiceResponse();
        }));
        app.MapPost("/v1/logs", context => HandleAsync(context, ExportLogsServiceRequest.Parser, request =>
        {
            converter.Ingest(request, store);
            return new ExportLogsServiceResponse();
        }));
        app.MapPost("/v1/metrics", context => HandleAsync(context, ExportMetricsServiceRequest.Parser, request =>
        {
            var (_, rejected) = converter.Ingest(request, store);
            return rejected == 0
                ? new ExportMetricsServiceResponse()
                : new ExportMetricsServiceResponse
                {
                    PartialSuccess = new ExportMetricsPartialSuccess
                    {
                        RejectedDataPoints = rejected,
                        ErrorMessage = $"Series limit of {store.Options.MaxSeriesPerResource} per resource reached.",
                    },
                };
        }));
    }

    private async Task HandleAsync<TRequest>(HttpContext context, MessageParser<TRequest> parser, Func<TRequest, IMessage> ingest)
        where TRequest : IMessage<TRequest>
    {
        var contentType = context.Request.ContentType ?? string.Empty;
        if (!contentType.StartsWith(ProtobufContentType, StringComparison.OrdinalIgnoreCase))
        {
            context.Response.StatusCode = StatusCodes.Status415UnsupportedMediaType;
            await context.Response.WriteAsync("Only application/x-protobuf is accepted (OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf).",
                context.RequestAborted).ConfigureAwait(false);
            return;
        }

        TRequest request;
        var buffer = ArrayPool<byte>.Shared.Rent(context.Request.ContentLength is { } length and > 0 and < int.MaxValue ? (int)length : 64 * 1024);
        try
        {
            var body = context.Request.Body;
            GZipStream? gzip = null;
            if (string.Equals(context.Request.Headers.ContentEncoding, "gzip", StringComparison.OrdinalIgnoreCase))
            {
                body = gzip = new GZipStream(body, CompressionMode.Decompress, leaveOpen: true);
            }

            var count = 0;
            await using (gzip)
            {
                while (true)
                {
                    if (count == buffer.Length)
                    {
                        if (buffer.Length >= maxBytes)
                        {
                            context.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
                            return;
                        }

                        var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                        buffer.AsSpan(0, count).CopyTo(larger);
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = larger;
                    }

                    var read = await body.ReadAsync(buffer.AsMemory(count), context.RequestAborted).ConfigureAwait(false);
                    if (read == 0)
                    {
                        break;
                    }

                    count += read;
                }
            }

            request = parser.ParseFrom(buffer, 0, count);
        }
        catch (Exception ex) when (ex is InvalidProtocolBufferException or InvalidDataException)
        {
            logger.LogDebug(ex, "Rejected an unreadable OTLP request to {Path}", context.Request.Path);
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            return;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        var response = ingest(request);
        context.Response.ContentType = ProtobufContentType;
        var bytes = response.ToByteArray();
        context.Response.ContentLength = bytes.Length;
        await context.Response.Body.WriteAsync(bytes, context.RequestAborted).ConfigureAwait(false);
    }
}
