using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Trace;
using Platform.TestSupport;

namespace Platform.ServiceDefaults.Tests;

public sealed class TelemetryTests
{
    [Fact]
    public async Task ServerSpan_IsNamedAfterRoute_WithRouteAndStatusTags()
    {
        var ct = TestContext.Current.CancellationToken;
        using var captured = new ServerSpanCapture("/span-ok/");
        await using var host = await TestHost.StartAsync(app => app.MapGet("/span-ok/{id}", (string id) => id), cancellationToken: ct);
        using var client = host.CreateClient();

        Assert.Equal("42", await client.GetStringAsync("/span-ok/42", ct));

        var span = await captured.SingleAsync(ct);
        Assert.Equal("GET /span-ok/{id}", span.DisplayName);
        Assert.Equal("/span-ok/{id}", span.GetTagItem("http.route"));
        Assert.Equal(200, Convert.ToInt32(span.GetTagItem("http.response.status_code"), System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal("GET", span.GetTagItem("http.request.method"));
        Assert.NotEqual(ActivityStatusCode.Error, span.Status);
    }

    [Fact]
    public async Task ServerSpan_ForUnhandledException_IsAnError500()
    {
        var ct = TestContext.Current.CancellationToken;
        using var captured = new ServerSpanCapture("/span-boom");
        await using var host = await TestHost.StartAsync(
            app => app.MapGet("/span-boom", string () => throw new InvalidOperationException("boom")), cancellationToken: ct);
        using var client = host.CreateClient();

        using var response = await client.GetAsync("/span-boom", ct);

        var span = await captured.SingleAsync(ct);
        Assert.Equal(500, (int)response.StatusCode);
        Assert.Equal("GET /span-boom", span.DisplayName);
        Assert.Equal(ActivityStatusCode.Error, span.Status);
        Assert.Equal(500, Convert.ToInt32(span.GetTagItem("http.response.status_code"), System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(typeof(InvalidOperationException).FullName, span.GetTagItem("error.type"));
    }

    [Fact]
    public async Task ProbeEndpoints_AreNotExported_OtherRequestsAre()
    {
        var ct = TestContext.Current.CancellationToken;
        var spans = new ConcurrentQueue<Activity>();
        await using var host = await TestHost.StartAsync(app => app.MapGet("/traced", () => "ok"), configureBuilder: SpanQueue.ExportTo(spans), cancellationToken: ct);
        using var client = host.CreateClient();

        await client.GetAsync("/health", ct);
        await client.GetAsync("/alive", ct);
        await client.GetStringAsync("/traced", ct);
        host.Services.GetRequiredService<TracerProvider>().ForceFlush();

        var names = await Waits.UntilAsync(() => Task.FromResult(spans.Select(a => a.DisplayName).ToArray()), n => n.Contains("GET /traced"),
            TimeSpan.FromSeconds(10), "the /traced request's span", ct);
        Assert.DoesNotContain(names, n => n.Contains("health", StringComparison.Ordinal) || n.Contains("alive", StringComparison.Ordinal));
        Assert.DoesNotContain(spans.Select(a => a.GetTagItem("url.path") as string), p => p is "/health" or "/alive");
    }

    [Fact]
    public async Task OtlpExporter_IsWiredOnlyWhenEndpointConfigured()
    {
        var ct = TestContext.Current.CancellationToken;
        var received = new ConcurrentQueue<(string Path, string? ContentType, long Length)>();
        await using var collector = await TestHost.StartAsync(
            app => app.MapPost("/v1/{signal}", async (HttpContext context) =>
            {
                using var buffer = new MemoryStream();
                await context.Request.Body.CopyToAsync(buffer, context.RequestAborted);
                received.Enqueue((context.Request.Path, context.Request.ContentType, buffer.Length));
                return Results.Ok();
            }),
            serviceDefaults: false,
            cancellationToken: ct);

        await using (var withoutEndpoint = await TestHost.StartAsync(app => app.MapGet("/x", () => "x"), cancellationToken: ct))
        {
            Assert.Null(withoutEndpoint.Services.GetService<OpenTelemetry.Exporter.OtlpExporterOptions>());
            Assert.NotNull(withoutEndpoint.Services.GetService<TracerProvider>());
        }

        await using var withEndpoint = await TestHost.StartAsync(
            app => app.MapGet("/otlp-probe", () => "x"),
            new Dictionary<string, string?>
            {
                ["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.Address.ToString().TrimEnd('/'),
                ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            },
            cancellationToken: ct);
        using var client = withEndpoint.CreateClient();
        await client.GetStringAsync("/otlp-probe", ct);
        Assert.True(withEndpoint.Services.GetRequiredService<TracerProvider>().ForceFlush(10_000));

        await Waits.UntilAsync(() => received.Any(r => r.Path == "/v1/traces"), TimeSpan.FromSeconds(10), "the OTLP trace export", ct);

        var traces = Assert.Single(received, r => r.Path == "/v1/traces");
        Assert.Equal("application/x-protobuf", traces.ContentType);
        Assert.True(traces.Length > 0);
    }

    [Fact]
    public async Task Stop_FlushesTheSpansStillBuffered()
    {
        var ct = TestContext.Current.CancellationToken;
        var received = new ConcurrentQueue<string>();
        await using var collector = await TestHost.StartCollectorAsync(received, ct);

        var service = await TestHost.StartAsync(
            app => app.MapGet("/flushed-on-stop", () => "x"),
            new Dictionary<string, string?>
            {
                ["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.Address.ToString().TrimEnd('/'),
                ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
                // This test is about what the stop flushes, not how long it may take (the next test checks the bound): the
                // first export of a test process on a loaded CI machine may outlast the 2 s default.
                ["Telemetry:ShutdownFlushTimeout"] = "00:00:30",
            },
            cancellationToken: ct);
        // Listening after the host started puts this listener after the service's tracer provider, so the span has
        // reached the provider's batch when the capture sees it end.
        using var captured = new ServerSpanCapture("/flushed-on-stop");
        using (var client = service.CreateClient())
        {
            await client.GetStringAsync("/flushed-on-stop", ct);
        }

        // A server span ends after its response is sent: the stop must find it buffered, not still open.
        await captured.SingleAsync(ct);
        // No ForceFlush: the batch processor would export 5 s later; only the stop's flush can have sent the span by now.
        await service.DisposeAsync();
        Assert.Contains("/v1/traces", received);
    }

    [Fact]
    public async Task Stop_WithACollectorThatNeverAnswers_WaitsOnlyTheFlushTimeout()
    {
        var ct = TestContext.Current.CancellationToken;
        // Accepts connections and never answers, like a collector that hangs or a network that drops its packets.
        using var silent = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        silent.Start();
        var accepted = new ConcurrentBag<System.Net.Sockets.Socket>();
        _ = Task.Run(async () =>
        {
            while (true)
            {
                accepted.Add(await silent.AcceptSocketAsync(ct));
            }
        }, ct);

        // Several services stop at once, as the hosts of a test run or the services of a busy process do: every flush blocks
        // on exporters, and a stop must not wait for thread-pool threads that those flushes hold.
        var services = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => TestHost.StartAsync(
            app => app.MapGet("/unexported", () => "x"),
            new Dictionary<string, string?>
            {
                ["OTEL_EXPORTER_OTLP_ENDPOINT"] = $"http://127.0.0.1:{((System.Net.IPEndPoint)silent.LocalEndpoint).Port}",
                ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
                ["Telemetry:ShutdownFlushTimeout"] = "00:00:01",
            },
            cancellationToken: ct)));
        foreach (var service in services)
        {
            using var client = service.CreateClient();
            await client.GetStringAsync("/unexported", ct);
        }

        var stops = await Task.WhenAll(services.Select(service => Task.Run(async () =>
        {
            var stopping = Stopwatch.StartNew();
            await service.DisposeAsync();
            return stopping.Elapsed;
        })));

        // Left to OpenTelemetry's disposal, every provider waits 5 s for an export that cannot finish.
        Assert.All(stops, stop => Assert.True(stop < TimeSpan.FromSeconds(4), $"a service took {stop.TotalSeconds:F1} s to stop"));
        // It did try: the stop's flush connected to the collector.
        await Waits.UntilAsync(() => !accepted.IsEmpty, TimeSpan.FromSeconds(5), "the exporter's connection to the silent collector", ct);
        foreach (var socket in accepted)
        {
            socket.Dispose();
        }
    }

    /// <summary>Captures stopped ASP.NET Core server activities whose path starts with a test-unique prefix.</summary>
    private sealed class ServerSpanCapture : IDisposable
    {
        private readonly ActivityListener _listener;
        private readonly TaskCompletionSource<Activity> _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ServerSpanCapture(string pathPrefix)
        {
            _listener = new ActivityListener
            {
                ShouldListenTo = source => source.Name == "Microsoft.AspNetCore",
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
                ActivityStopped = activity =>
                {
                    if (activity.GetTagItem("url.path") is string path && path.StartsWith(pathPrefix, StringComparison.Ordinal))
                    {
                        _stopped.TrySetResult(activity);
                    }
                },
            };
            ActivitySource.AddActivityListener(_listener);
        }

        public Task<Activity> SingleAsync(CancellationToken cancellationToken) => _stopped.Task.WaitAsync(TimeSpan.FromSeconds(10), cancellationToken);

        public void Dispose() => _listener.Dispose();
    }
}

public sealed class TelemetryResourceTests
{
    [Fact]
    public async Task Resource_TakesServiceNameAndReplicaIdFromOtelVariables()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var host = await TestHost.StartAsync(
            _ => { },
            new Dictionary<string, string?>
            {
                ["OTEL_SERVICE_NAME"] = "inference-api",
                ["OTEL_RESOURCE_ATTRIBUTES"] = "service.instance.id=inference-api-1",
            },
            cancellationToken: ct);

        var attributes = host.Services.GetRequiredService<TracerProvider>().GetResource().Attributes.ToDictionary(a => a.Key, a => a.Value);

        Assert.Equal("inference-api", attributes["service.name"]);
        Assert.Equal("inference-api-1", attributes["service.instance.id"]);
        Assert.True(attributes.ContainsKey("service.version"));
    }

    [Fact]
    public async Task Resource_GeneratesReplicaId_WhenNoneIsGiven()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var host = await TestHost.StartAsync(_ => { }, cancellationToken: ct);

        var attributes = host.Services.GetRequiredService<TracerProvider>().GetResource().Attributes.ToDictionary(a => a.Key, a => a.Value);

        Assert.Equal("Platform.Tests", attributes["service.name"]);
        Assert.False(string.IsNullOrEmpty(attributes["service.instance.id"] as string));
    }
}
