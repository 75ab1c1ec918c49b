using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Platform.Hosting.Telemetry.Otlp.Collector.Trace;

namespace Platform.Dashboard.Tests;

/// <summary>The receiver fed by the real OpenTelemetry .NET OTLP exporter (http/protobuf), as services use it.</summary>
public sealed class OtlpReceiverTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static void Configure(OtlpExporterOptions o, DashboardHost host, string signal)
    {
        o.Endpoint = new Uri($"{host.Url}/v1/{signal}");
        o.Protocol = OtlpExportProtocol.HttpProtobuf;
        o.Headers = host.Auth.OtlpHeaders;
    }

    [Fact]
    public async Task SpansFromTwoServicesFormOneTraceWithAWaterfallAndOtlpJsonExport()
    {
        await using var host = await DashboardHost.StartAsync();
        var sourceName = "Test.Dashboard." + Guid.NewGuid().ToString("N");
        using var source = new ActivitySource(sourceName);
        using var api = Sdk.CreateTracerProviderBuilder().AddSource(sourceName)
            .ConfigureResource(r => r.AddService("api", serviceInstanceId: "api-0"))
            .AddOtlpExporter(o => Configure(o, host, "traces")).Build();

        string traceId;
        ActivityContext parent;
        using (var root = source.StartActivity("GET /infer", ActivityKind.Server)!)
        {
            root.SetTag("http.route", "/infer");
            root.SetTag("http.response.status_code", 200);
            traceId = root.TraceId.ToHexString();
            using (var call = source.StartActivity("POST worker", ActivityKind.Client)!)
            {
                parent = call.Context;
            }
        }

        Assert.True(api.ForceFlush(5000));

        // The second service is a separate exporter with its own resource, as another process would be.
        var workerSource = sourceName + ".worker";
        using var workerActivitySource = new ActivitySource(workerSource);
        using var worker = Sdk.CreateTracerProviderBuilder().AddSource(workerSource)
            .ConfigureResource(r => r.AddService("worker", serviceInstanceId: "worker-1"))
            .AddOtlpExporter(o => Configure(o, host, "traces")).Build();
        using (var handled = workerActivitySource.StartActivity("POST /run", ActivityKind.Server, parent)!)
        {
            handled.SetStatus(ActivityStatusCode.Error, "model failed");
        }

        Assert.True(worker.ForceFlush(5000));

        using var client = host.Client();
        var list = await client.GetFromJsonAsync<JsonElement>("/api/traces", Ct);
        var summary = list.GetProperty("traces").EnumerateArray().Single(t => t.GetProperty("traceId").GetString() == traceId);
        Assert.Equal("GET /infer", summary.GetProperty("rootName").GetString());
        Assert.Equal(3, summary.GetProperty("spanCount").GetInt32());
        Assert.Equal(1, summary.GetProperty("errorCount").GetInt32());
        Assert.Equal(["api", "worker"], summary.GetProperty("resources").EnumerateArray().Select(r => r.GetProperty("resource").GetString()).Order());

        var byResource = await client.GetFromJsonAsync<JsonElement>("/api/traces?resource=worker&errors=true", Ct);
        Assert.Equal(1, byResource.GetProperty("total").GetInt32());

        var trace = await client.GetFromJsonAsync<JsonElement>($"/api/traces/{traceId}", Ct);
        var spans = trace.GetProperty("spans").EnumerateArray().ToList();
        Assert.Equal(["GET /infer", "POST worker", "POST /run"], spans.Select(s => s.GetProperty("name").GetString()));
        Assert.Equal([0, 1, 2], spans.Select(s => s.GetProperty("depth").GetInt32()));
        Assert.Equal("worker-1", spans[2].GetProperty("instanceId").GetString());
        Assert.Equal("Error", spans[2].GetProperty("status").GetString());
        Assert.Contains(spans[0].GetProperty("attributes").EnumerateArray(),
            a => a.GetProperty("key").GetString() == "http.response.status_code" && a.GetProperty("value").GetString() == "200" && a.GetProperty("kind").GetString() == "Int");

        var export = await client.GetAsync($"/api/traces/{traceId}/otlp", Ct);
        Assert.Equal("attachment", export.Content.Headers.ContentDisposition!.DispositionType);
        var otlp = JsonDocument.Parse(await export.Content.ReadAsStringAsync(Ct)).RootElement;
        var exported = otlp.GetProperty("resourceSpans").EnumerateArray()
            .SelectMany(r => r.GetProperty("scopeSpans").EnumerateArray()).SelectMany(s => s.GetProperty("spans").EnumerateArray()).ToList();
        Assert.Equal(3, exported.Count);
        Assert.All(exported, s => Assert.Equal(traceId, s.GetProperty("traceId").GetString()));
        Assert.Contains(exported, s => s.GetProperty("kind").GetInt32() == 2 && s.GetProperty("name").GetString() == "GET /infer");
        var status = exported.Single(s => s.GetProperty("name").GetString() == "GET /infer").GetProperty("attributes").EnumerateArray()
            .Single(a => a.GetProperty("key").GetString() == "http.response.status_code");
        Assert.Equal("200", status.GetProperty("value").GetProperty("intValue").GetString());
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/api/traces/00000000000000000000000000000001", Ct)).StatusCode);
    }

    [Fact]
    public async Task LogsArriveWithLevelsTraceIdsAndFormattedMessages()
    {
        await using var host = await DashboardHost.StartAsync();
        using (var factory = LoggerFactory.Create(b => b.AddOpenTelemetry(o =>
               {
                   o.SetResourceBuilder(ResourceBuilder.CreateEmpty().AddService("api", serviceInstanceId: "api-0"));
                   o.AddOtlpExporter(e => Configure(e, host, "logs"));
               })))
        {
            var logger = factory.CreateLogger("Platform.Tests.Orders");
            logger.LogInformation("Order {OrderId} accepted", 42);
            logger.LogWarning("Queue {Queue} is {Depth} deep", "inference", 17);
            using var activity = new Activity("op").SetIdFormat(ActivityIdFormat.W3C).Start();
            logger.LogError("Worker {Worker} failed", "w-1");
        }

        using var client = host.Client();
        var all = await client.GetFromJsonAsync<JsonElement>("/api/logs", Ct);
        Assert.Equal(3, all.GetProperty("total").GetInt32());
        var messages = all.GetProperty("logs").EnumerateArray().Select(l => l.GetProperty("message").GetString()).ToList();
        Assert.Contains("Order 42 accepted", messages);
        Assert.Contains("Queue inference is 17 deep", messages);

        var warnings = await client.GetFromJsonAsync<JsonElement>("/api/logs?level=Warning", Ct);
        Assert.Equal(2, warnings.GetProperty("total").GetInt32());
        var error = (await client.GetFromJsonAsync<JsonElement>("/api/logs?level=Error&resource=api", Ct)).GetProperty("logs")[0];
        Assert.Equal("Platform.Tests.Orders", error.GetProperty("category").GetString());
        var traceId = error.GetProperty("traceId").GetString()!;
        Assert.Equal(32, traceId.Length);
        Assert.Equal(1, (await client.GetFromJsonAsync<JsonElement>($"/api/logs?traceId={traceId}", Ct)).GetProperty("total").GetInt32());
        Assert.Equal(1, (await client.GetFromJsonAsync<JsonElement>("/api/logs?text=inference", Ct)).GetProperty("total").GetInt32());
        Assert.Equal(0, (await client.GetFromJsonAsync<JsonElement>("/api/logs?resource=worker", Ct)).GetProperty("total").GetInt32());
    }

    [Fact]
    public async Task MetricsArriveAsCumulativePointsAndChartAsRatesAndPercentiles()
    {
        await using var host = await DashboardHost.StartAsync();
        var meterName = "Platform.Tests." + Guid.NewGuid().ToString("N");
        using var meter = new Meter(meterName);
        var requests = meter.CreateCounter<long>("requests");
        var duration = meter.CreateHistogram<double>("request.duration", "s", null, null,
            new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.025, 0.05, 0.1] });
        using var provider = Sdk.CreateMeterProviderBuilder().AddMeter(meterName)
            .ConfigureResource(r => r.AddService("api", serviceInstanceId: "api-0"))
            .AddOtlpExporter((e, reader) =>
            {
                Configure(e, host, "metrics");
                reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = 60_000;
            }).Build();

        for (var round = 0; round < 3; round++)
        {
            for (var i = 0; i < 10; i++)
            {
                requests.Add(1, new KeyValuePair<string, object?>("route", "/infer"));
                duration.Record(0.02 + (i * 0.001));
            }

            Assert.True(provider.ForceFlush(5000));
            await Task.Delay(50, Ct);
        }

        using var client = host.Client();
        var instruments = await client.GetFromJsonAsync<JsonElement>("/api/metrics?resource=api", Ct);
        var counter = instruments.EnumerateArray().Single(i => i.GetProperty("name").GetString() == "requests");
        Assert.Equal(meterName, counter.GetProperty("meter").GetString());
        Assert.True(counter.GetProperty("isMonotonic").GetBoolean());
        Assert.Equal("Cumulative", counter.GetProperty("temporality").GetString());

        var rate = await client.GetFromJsonAsync<JsonElement>($"/api/metrics/chart?resource=api&meter={meterName}&name=requests", Ct);
        Assert.Equal("rate", rate.GetProperty("view").GetString());
        var series = Assert.Single(rate.GetProperty("series").EnumerateArray());
        Assert.Contains("route=/infer", series.GetProperty("label").GetString(), StringComparison.Ordinal);
        Assert.Equal(2, series.GetProperty("points").GetArrayLength());
        Assert.All(series.GetProperty("points").EnumerateArray(), p => Assert.True(p.GetProperty("value").GetDouble() > 0));

        var raw = await client.GetFromJsonAsync<JsonElement>($"/api/metrics/chart?resource=api&meter={meterName}&name=requests&view=value", Ct);
        Assert.Equal([10d, 20d, 30d], raw.GetProperty("series")[0].GetProperty("points").EnumerateArray().Select(p => p.GetProperty("value").GetDouble()));

        var p95 = await client.GetFromJsonAsync<JsonElement>($"/api/metrics/chart?resource=api&meter={meterName}&name=request.duration", Ct);
        Assert.Equal("p95", p95.GetProperty("view").GetString());
        var p95Points = p95.GetProperty("series")[0].GetProperty("points").EnumerateArray().Select(p => p.GetProperty("value").GetDouble()).ToList();
        Assert.Equal(2, p95Points.Count);
        // The advised buckets put 0.020–0.029 s in (0.01, 0.025] and (0.025, 0.05]: the estimate lies in that range.
        Assert.All(p95Points, v => Assert.InRange(v, 0.01, 0.05));
        var mean = await client.GetFromJsonAsync<JsonElement>($"/api/metrics/chart?resource=api&meter={meterName}&name=request.duration&view=mean", Ct);
        Assert.All(mean.GetProperty("series")[0].GetProperty("points").EnumerateArray(), p => Assert.Equal(0.0245, p.GetProperty("value").GetDouble(), 6));
    }

    [Fact]
    public async Task ReceiverRequiresTheOtlpApiKeyNotTheBrowserToken()
    {
        await using var host = await DashboardHost.StartAsync();
        var body = new ExportTraceServiceRequest().ToByteArray();
        using var client = new HttpClient { BaseAddress = new Uri(host.Url) };

        async Task<HttpStatusCode> PostAsync(Action<HttpRequestMessage> configure, string contentType = "application/x-protobuf")
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/traces") { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = new(contentType);
            configure(request);
            return (await client.SendAsync(request, Ct)).StatusCode;
        }

        Assert.Equal(HttpStatusCode.Unauthorized, await PostAsync(_ => { }));
        Assert.Equal(HttpStatusCode.Unauthorized, await PostAsync(r => r.Headers.Authorization = new("Bearer", DashboardHost.Token)));
        Assert.Equal(HttpStatusCode.Unauthorized, await PostAsync(r => r.Headers.Add("x-otlp-api-key", "wrong")));
        Assert.Equal(HttpStatusCode.OK, await PostAsync(r => r.Headers.Add("x-otlp-api-key", host.Auth.OtlpApiKey)));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, await PostAsync(r => r.Headers.Add("x-otlp-api-key", host.Auth.OtlpApiKey), "application/json"));

        using var garbage = new HttpRequestMessage(HttpMethod.Post, "/v1/logs") { Content = new ByteArrayContent([0xff, 0xff, 0xff, 0x0f]) };
        garbage.Content.Headers.ContentType = new("application/x-protobuf");
        garbage.Headers.Add("x-otlp-api-key", host.Auth.OtlpApiKey);
        Assert.Equal(HttpStatusCode.BadRequest, (await client.SendAsync(garbage, Ct)).StatusCode);
    }
}
