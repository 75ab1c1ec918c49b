// OTLP ingest and dashboard response-time benchmark. Usage:
//   dotnet run -c Release --project bench/Platform.Bench.Otlp [-- --spans 300000 --batch 512 --senders 2]
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Platform.Hosting;
using Platform.Hosting.Dashboard;
using Platform.Hosting.Telemetry;
using Platform.Hosting.Telemetry.Otlp.Collector.Trace;
using Platform.Hosting.Telemetry.Otlp.Common;
using Platform.Hosting.Telemetry.Otlp.Trace;
using OtlpResource = Platform.Hosting.Telemetry.Otlp.Resource.Resource;
using OtlpSpan = Platform.Hosting.Telemetry.Otlp.Trace.Span;

var totalSpans = Arg("--spans", 300_000);
var batchSize = Arg("--batch", 512);
var senders = Arg("--senders", 2);
const int Resources = 10;
const string Token = "bench-token";

var options = Options.Create(new DashboardOptions { Port = 0, BrowserToken = Token, PersistTelemetry = false });
var store = new TelemetryStore(Options.Create(new TelemetryStoreOptions()));
var auth = new DashboardAuth(options, TimeProvider.System);
var server = new DashboardServer(options, new DashboardEndpoint(options), auth, new ResourceNotificationService(),
    new ResourceLoggerService(TimeProvider.System), new NoActions(), store, NullLoggerFactory.Instance, TimeProvider.System);
await server.StartAsync(CancellationToken.None);

Console.WriteLine($"Platform.Bench.Otlp: {Environment.ProcessorCount} cores, {totalSpans:N0} spans in batches of {batchSize}, {senders} concurrent senders");

// Payloads are built up front so the measurement is the receiver, not the generator.
var batches = totalSpans / batchSize;
var payloads = Enumerable.Range(0, batches).Select(i => BuildRequest(i, batchSize).ToByteArray()).ToArray();
Console.WriteLine($"payload: {payloads[0].Length / 1024.0:F1} KiB per request ({payloads[0].Length / (double)batchSize:F0} bytes per span)");

// 1. In-process: parse + convert + store, no HTTP.
{
    var local = new TelemetryStore(Options.Create(new TelemetryStoreOptions()));
    var converter = new OtlpConverter(local.Options);
    var sw = Stopwatch.StartNew();
    foreach (var payload in payloads)
    {
        converter.Ingest(ExportTraceServiceRequest.Parser.ParseFrom(payload), local);
    }

    sw.Stop();
    Console.WriteLine($"ingest (in-process parse+store): {batches * batchSize / sw.Elapsed.TotalSeconds,12:N0} spans/s");
}

// 2. Over HTTP: POST /v1/traces with the API key, as the OpenTelemetry exporter does.
using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = senders }) { BaseAddress = new Uri(server.Url) };
async Task SendAsync(byte[] payload)
{
    using var content = new ByteArrayContent(payload);
    content.Headers.ContentType = new MediaTypeHeaderValue("application/x-protobuf");
    using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/traces") { Content = content };
    request.Headers.Add(DashboardAuth.OtlpApiKeyHeader, auth.OtlpApiKey);
    using var response = await http.SendAsync(request);
    response.EnsureSuccessStatusCode();
}

for (var i = 0; i < Math.Min(20, payloads.Length); i++)
{
    await SendAsync(payloads[i]); // warm-up (JIT, connections)
}

store.Clear();
var next = -1;
var ingest = Stopwatch.StartNew();
await Task.WhenAll(Enumerable.Range(0, senders).Select(_ => Task.Run(async () =>
{
    int index;
    while ((index = Interlocked.Increment(ref next)) < payloads.Length)
    {
        await SendAsync(payloads[index]);
    }
})));
ingest.Stop();
var rate = batches * batchSize / ingest.Elapsed.TotalSeconds;
Console.WriteLine($"ingest (HTTP /v1/traces):        {rate,12:N0} spans/s  (target >= 20,000: {(rate >= 20_000 ? "met" : "NOT met")})");
Console.WriteLine($"stored: {store.SpanCount:N0} spans (bound {store.Options.MaxSpansPerResource:N0} per resource x {Resources} resources), " +
    $"{store.GetTraces(new TraceQuery(Limit: 1)).Total:N0} traces; GC heap {GC.GetTotalMemory(true) / 1024.0 / 1024.0:F0} MiB");

// 3. Response times with the store full.
using var api = new HttpClient { BaseAddress = new Uri(server.Url) };
api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
var someTrace = store.GetTraces(new TraceQuery(Limit: 1)).Traces[0].TraceId;
foreach (var (name, path) in new[]
{
    ("trace list (100 newest)", "/api/traces?limit=100"),
    ("trace list, resource filter", "/api/traces?resource=svc-3&limit=100"),
    ("trace list, text search", "/api/traces?text=tenant-7&limit=100"),
    ("trace list, errors only", "/api/traces?errors=true&limit=100"),
    ("one trace (waterfall)", $"/api/traces/{someTrace}"),
    ("one trace as OTLP-JSON", $"/api/traces/{someTrace}/otlp"),
    ("traces page (HTML)", "/traces"),
})
{
    var times = new List<double>();
    for (var i = 0; i < 25; i++)
    {
        var sw = Stopwatch.StartNew();
        using var response = await api.GetAsync(path);
        await response.Content.ReadAsByteArrayAsync();
        response.EnsureSuccessStatusCode();
        times.Add(sw.Elapsed.TotalMilliseconds);
    }

    times.Sort();
    Console.WriteLine($"{name,-30} median {times[times.Count / 2],8:F1} ms   p95 {times[(int)(times.Count * 0.95)],8:F1} ms");
}

await server.StopAsync(CancellationToken.None);
await server.DisposeAsync();

int Arg(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}

static ExportTraceServiceRequest BuildRequest(int batch, int size)
{
    // Traces of 5 spans across 2 services, like an API call fanning out to a worker.
    var request = new ExportTraceServiceRequest();
    var byResource = new Dictionary<int, ScopeSpans>();
    var random = new Random(batch);
    var now = (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000UL;
    for (var i = 0; i < size; i++)
    {
        var traceNumber = (batch * size + i) / 5;
        var resource = (traceNumber + (i % 5 == 0 ? 0 : 1)) % Resources;
        if (!byResource.TryGetValue(resource, out var scope))
        {
            var rs = new ResourceSpans { Resource = new OtlpResource() };
            rs.Resource.Attributes.Add(new KeyValue { Key = "service.name", Value = new AnyValue { StringValue = $"svc-{resource}" } });
            rs.Resource.Attributes.Add(new KeyValue { Key = "service.instance.id", Value = new AnyValue { StringValue = $"svc-{resource}-0" } });
            scope = new ScopeSpans { Scope = new InstrumentationScope { Name = "Microsoft.AspNetCore" } };
            rs.ScopeSpans.Add(scope);
            request.ResourceSpans.Add(rs);
            byResource[resource] = scope;
        }

        var traceId = new byte[16];
        BitConverter.TryWriteBytes(traceId.AsSpan(8), (long)traceNumber + 1);
        var spanId = new byte[8];
        BitConverter.TryWriteBytes(spanId, (long)(batch * size + i) + 1);
        var start = now + (ulong)(i * 1000);
        var span = new OtlpSpan
        {
            TraceId = ByteString.CopyFrom(traceId),
            SpanId = ByteString.CopyFrom(spanId),
            Name = i % 5 == 0 ? "POST /v2/models/{name}/infer" : "POST /run",
            Kind = i % 5 == 0 ? OtlpSpan.Types.SpanKind.Server : OtlpSpan.Types.SpanKind.Client,
            StartTimeUnixNano = start,
            EndTimeUnixNano = start + (ulong)random.Next(100_000, 50_000_000),
            Status = new Status { Code = random.Next(100) == 0 ? Status.Types.StatusCode.Error : Status.Types.StatusCode.Unset },
        };
        if (i % 5 != 0)
        {
            var parent = new byte[8];
            BitConverter.TryWriteBytes(parent, (long)(batch * size + i - (i % 5)) + 1);
            span.ParentSpanId = ByteString.CopyFrom(parent);
        }

        span.Attributes.Add(new KeyValue { Key = "http.request.method", Value = new AnyValue { StringValue = "POST" } });
        span.Attributes.Add(new KeyValue { Key = "http.route", Value = new AnyValue { StringValue = "/v2/models/{name}/infer" } });
        span.Attributes.Add(new KeyValue { Key = "http.response.status_code", Value = new AnyValue { IntValue = 200 } });
        span.Attributes.Add(new KeyValue { Key = "server.address", Value = new AnyValue { StringValue = "127.0.0.1" } });
        span.Attributes.Add(new KeyValue { Key = "server.port", Value = new AnyValue { IntValue = 5000 + resource } });
        span.Attributes.Add(new KeyValue { Key = "url.scheme", Value = new AnyValue { StringValue = "http" } });
        span.Attributes.Add(new KeyValue { Key = "platform.tenant", Value = new AnyValue { StringValue = $"tenant-{random.Next(50)}" } });
        span.Attributes.Add(new KeyValue { Key = "platform.batch_size", Value = new AnyValue { IntValue = random.Next(1, 32) } });
        scope.Spans.Add(span);
    }

    return request;
}

internal sealed class NoActions : IResourceActions
{
    public Task StopAsync(string resource, string? instanceId, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(string resource, string? instanceId, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task RestartAsync(string resource, string? instanceId, CancellationToken cancellationToken) => Task.CompletedTask;
}
