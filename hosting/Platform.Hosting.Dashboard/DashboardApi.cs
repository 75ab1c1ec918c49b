using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Platform.Hosting.Telemetry;

namespace Platform.Hosting.Dashboard;

/// <summary>The JSON API under <c>/api</c>: what the UI draws, and what tests and scripts read.</summary>
internal sealed class DashboardApi(
    ResourceNotificationService notifications,
    ResourceLoggerService logs,
    IResourceActions actions,
    TelemetryStore store,
    TimeProvider time,
    CancellationToken stopping)
{
    public void Map(WebApplication app)
    {
        var api = app.MapGroup("/api");
        api.MapGet("/resources", () => notifications.GetAll().Select(ResourceDto.From));
        api.MapGet("/resources/{name}", (string name) =>
            notifications.TryGet(name) is { } s ? Results.Ok(s) : UnknownResource(name));
        api.MapGet("/resources/{name}/logs", (string name, int? tail, string? filter) =>
            notifications.TryGet(name) is null
                ? UnknownResource(name)
                : Results.Ok(logs.GetLines(name, Math.Clamp(tail ?? 500, 1, 100_000)).Where(l => Matches(l, filter))));
        api.MapGet("/resources/{name}/logs/stream", StreamConsoleAsync);
        api.MapPost("/resources/{name}/{action}", RunActionAsync);

        api.MapGet("/logs", (string? resource, string? level, string? text, string? traceId, long? after, int? limit) =>
        {
            var page = store.GetLogs(new LogQuery(Blank(resource), Blank(level), Blank(text), Blank(traceId), after, limit ?? 200));
            return new LogPageDto(page.Total, page.LastSequence, page.Logs.Select(LogDto.From).ToList());
        });

        // Filters bind as strings so an empty value from a form means "any" instead of a 400.
        api.MapGet("/traces", (string? resource, string? errors, string? text, string? minDurationMs, int? limit) =>
            store.GetTraces(new TraceQuery(Blank(resource), bool.TryParse(errors, out var e) && e, Blank(text),
                double.TryParse(minDurationMs, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d) ? d : null,
                limit ?? 100)));
        api.MapGet("/traces/{traceId}", (string traceId) =>
            store.GetTrace(traceId) is { } trace
                ? Results.Ok(new TraceDto(trace.Summary, trace.Spans.Select(s => SpanDto.From(s, trace.Summary.StartUnixNano)).ToList()))
                : Results.NotFound(new { error = $"Unknown trace '{traceId}'." }));
        api.MapGet("/traces/{traceId}/otlp", (string traceId, HttpContext context) =>
        {
            if (store.GetTrace(traceId) is not { } trace)
            {
                return Task.FromResult(Results.NotFound(new { error = $"Unknown trace '{traceId}'." }));
            }

            using var buffer = new MemoryStream();
            using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
            {
                OtlpExport.WriteTraceJson(writer, trace.Spans.Select(s => s.Span));
            }

            context.Response.Headers.ContentDisposition = $"attachment; filename=\"trace-{trace.Summary.TraceId}.json\"";
            return Task.FromResult(Results.Bytes(buffer.ToArray(), "application/json"));
        });

        api.MapGet("/metrics", (string? resource) => store.GetInstruments(Blank(resource)));
        api.MapGet("/metrics/chart", (string resource, string meter, string name, string? view, double? minutes) =>
        {
            if (store.GetInstrument(resource, meter, name) is not { } data)
            {
                return Results.NotFound(new { error = $"Unknown instrument '{meter}/{name}' of '{resource}'." });
            }

            var views = MetricCharts.Views(data.Summary);
            var chosen = view is not null && views.Contains(view) ? view : views[0];
            var since = minutes is { } m and > 0 ? TelemetryTime.ToUnixNano(time.GetUtcNow().AddMinutes(-m)) : 0;
            return Results.Ok(new MetricChartDto(data.Summary, chosen, views, MetricCharts.Chart(data, chosen, since)));
        });

        api.MapGet("/telemetry", () => new { spans = store.SpanCount, resources = store.GetResources() });
        api.MapDelete("/telemetry", (string? resource) =>
        {
            store.Clear(Blank(resource));
            return Results.NoContent();
        });
    }

    private static IResult UnknownResource(string name) => Results.NotFound(new { error = $"Unknown resource '{name}'." });

    private static string? Blank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    private static bool Matches(LogLine line, string? filter) =>
        string.IsNullOrEmpty(filter) || line.Text.Contains(filter, StringComparison.OrdinalIgnoreCase);

    private async Task<IResult> RunActionAsync(string name, string action, string? instance)
    {
        if (notifications.TryGet(name) is null)
        {
            return UnknownResource(name);
        }

        Func<string, string?, CancellationToken, Task>? run = action.ToLowerInvariant() switch
        {
            "stop" => actions.StopAsync,
            "start" => actions.StartAsync,
            "restart" => actions.RestartAsync,
            _ => null,
        };
        if (run is null)
        {
            return Results.BadRequest(new { error = $"Unknown action '{action}'. Use stop, start or restart." });
        }

        try
        {
            // Not the request's token: a browser navigating away must not leave a resource half restarted.
            await run(name, string.IsNullOrWhiteSpace(instance) ? null : instance, stopping).ConfigureAwait(false);
        }
        catch (DistributedApplicationException ex)
        {
            return Results.BadRequest(new { error = ex.Message });
        }

        return Results.Ok(notifications.TryGet(name) is { } s ? ResourceDto.From(s) : null);
    }

    /// <summary>Server-sent events: the last <c>tail</c> lines, then new lines as they are written.</summary>
    private async Task StreamConsoleAsync(HttpContext context, string name, int? tail, string? filter)
    {
        if (notifications.TryGet(name) is null)
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        var json = context.RequestServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions;
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        context.Response.Headers["X-Accel-Buffering"] = "no";
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping);
        var token = linked.Token;
        var backlog = logs.GetLines(name, Math.Clamp(tail ?? 1000, 0, 100_000));
        var last = 0L;
        try
        {
            foreach (var line in backlog)
            {
                last = line.Sequence;
                if (Matches(line, filter))
                {
                    await WriteEventAsync(context, line, json, token).ConfigureAwait(false);
                }
            }

            await context.Response.WriteAsync(": backlog sent\n\n", token).ConfigureAwait(false);
            await context.Response.Body.FlushAsync(token).ConfigureAwait(false);
            await foreach (var line in logs.FollowAsync(name, token).ConfigureAwait(false))
            {
                // FollowAsync replays what is kept before following; the backlog already covered that.
                if (line.Sequence <= last || !Matches(line, filter))
                {
                    continue;
                }

                await WriteEventAsync(context, line, json, token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static async Task WriteEventAsync(HttpContext context, LogLine line, JsonSerializerOptions json, CancellationToken token)
    {
        var payload = JsonSerializer.Serialize(line, json);
        await context.Response.WriteAsync($"id: {line.Sequence}\ndata: {payload}\n\n", token).ConfigureAwait(false);
        await context.Response.Body.FlushAsync(token).ConfigureAwait(false);
    }
}
