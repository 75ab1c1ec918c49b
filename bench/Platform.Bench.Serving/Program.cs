// Serving benchmark: raw ONNX Runtime in-process vs end-to-end through InferenceApi (binary tensor extension) at
// concurrency 1/8/32/64 with dynamic batching off and on, all in one run on this machine.
//   dotnet run -c Release --project bench/Platform.Bench.Serving [-- --seconds 5]
using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.InteropServices;
using Platform.Hosting.Testing;
using Platform.Inference.OpenInference;
using Platform.Inference.Protocol;
using Platform.OnnxModels;
using Platform.OnnxRuntime;

var seconds = args.SkipWhile(a => a != "--seconds").Skip(1).Select(double.Parse).FirstOrDefault(5);
var measure = TimeSpan.FromSeconds(seconds);
var model = ModelCatalog.Generate("benchmark");
const int Features = 512;
Console.WriteLine($"benchmark model: {model.ParameterCount:N0} parameters, {model.FlopsPerSample / 1e6:F1} MFLOP/sample; {Environment.ProcessorCount} cores");

// (a) raw ONNX Runtime, in-process, same library and settings as the workers (default intra-op threads).
var rows = new List<Row>();
double rawBest;
double rawSingleP50Ms;
using (var ort = new OrtEnvironment())
using (var session = ort.CreateSession(model.Bytes))
{
    var random = new Random(1);
    var single = RandomRows(random, 1);
    var latencies = new List<double>();
    for (var i = 0; i < 50; i++)
    {
        Run(session, single, 1);
    }

    var sw = Stopwatch.StartNew();
    while (sw.Elapsed < measure)
    {
        var t = Stopwatch.GetTimestamp();
        Run(session, single, 1);
        latencies.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
    }

    rawSingleP50Ms = Percentile(latencies, 0.5);
    rows.Add(new Row("raw ORT", "batch 1", 1, latencies.Count / sw.Elapsed.TotalSeconds, rawSingleP50Ms, Percentile(latencies, 0.99)));
    rawBest = 0;
    foreach (var batch in new[] { 8, 32, 64, 128 })
    {
        var input = RandomRows(random, batch);
        Run(session, input, batch);
        var runs = new List<double>();
        sw.Restart();
        while (sw.Elapsed < measure / 2)
        {
            var t = Stopwatch.GetTimestamp();
            Run(session, input, batch);
            runs.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
        }

        var throughput = runs.Count * batch / sw.Elapsed.TotalSeconds;
        rawBest = Math.Max(rawBest, throughput);
        rows.Add(new Row("raw ORT", $"batch {batch}", 1, throughput, Percentile(runs, 0.5), Percentile(runs, 0.99)));
    }

    rawBest = Math.Max(rawBest, rows[0].Throughput);
}

// (b) the platform, started here the way the integration tests start it.
const string AdminKey = "bench-admin-key";
await using var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Platform_AppHost>([$"--Parameters:admin-api-key={AdminKey}"]);
await using var app = await builder.BuildAsync();
await app.StartAsync();
await app.WaitForAllHealthyAsync(TimeSpan.FromSeconds(180));
using var admin = app.CreateHttpClient("admin-api");
admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
using (var content = new ByteArrayContent(model.Bytes))
{
    content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
    (await admin.PostAsync("/api/models/bench/versions", content)).EnsureSuccessStatusCode();
}

(await admin.PostAsync("/api/models/bench/versions/1/activate", null)).EnsureSuccessStatusCode();
var inferenceUri = app.GetEndpoint("inference-api");
using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256, UseProxy = false, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) })
{
    BaseAddress = inferenceUri,
};
var request = BuildRequest(RandomRows(new Random(2), 1));
await WaitServedAsync(http, request);

var results = new Dictionary<(bool Batching, int Concurrency), Row>();
foreach (var batching in new[] { false, true })
{
    var settings = batching
        ? new { maxBatchSize = 64, maxQueueDelayMicros = 2000, queueCapacity = 4096, cacheEnabled = false, cacheTtlSeconds = 300 }
        : new { maxBatchSize = 1, maxQueueDelayMicros = 0, queueCapacity = 4096, cacheEnabled = false, cacheTtlSeconds = 300 };
    (await admin.PutAsJsonAsync("/api/models/bench/settings", settings)).EnsureSuccessStatusCode();
    await Task.Delay(TimeSpan.FromSeconds(3)); // every worker picks the settings up (notification + reconcile)
    foreach (var concurrency in new[] { 1, 8, 32, 64 })
    {
        await LoadAsync(http, request, concurrency, TimeSpan.FromSeconds(1)); // warm-up
        var row = await LoadAsync(http, request, concurrency, measure);
        row = row with { Setup = $"e2e batching {(batching ? "on" : "off")}" };
        results[(batching, concurrency)] = row;
        rows.Add(row);
    }
}

Console.WriteLine();
Console.WriteLine($"{"setup",-22} {"load",-10} {"conc",5} {"inf/s",10} {"p50 ms",9} {"p99 ms",9} {"errors",7}");
foreach (var row in rows)
{
    Console.WriteLine($"{row.Setup,-22} {row.Load,-10} {row.Concurrency,5} {row.Throughput,10:F0} {row.P50Ms,9:F3} {row.P99Ms,9:F3} {row.Errors,7}");
}

var e2eOverRaw = results[(true, 64)].Throughput / rawBest;
var batchingGain = results[(true, 32)].Throughput / results[(false, 32)].Throughput;
var addedP50 = results[(true, 1)].P50Ms - rawSingleP50Ms;
Console.WriteLine();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT e2e_over_raw={e2eOverRaw:F3}"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT batching_gain_c32={batchingGain:F3}"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT added_p50_ms_c1={addedP50:F3}"));
return 0;

static float[] RandomRows(Random random, int rows) =>
    Enumerable.Range(0, rows * Features).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();

static void Run(InferenceSession session, float[] input, int rows)
{
    using var result = session.Run([new NamedTensor("input", TensorData.From(input, rows, Features))]);
}

static (byte[] Body, int JsonLength) BuildRequest(float[] row)
{
    var buffer = new ArrayBufferWriter<byte>();
    var tensor = new InferTensor("input", DataType.Fp32, [1, Features], MemoryMarshal.AsBytes(row.AsSpan()).ToArray());
    var jsonLength = InferClientCodec.WriteRequest(buffer, [tensor], TensorEncoding.Binary, parameters: new InferRequestParameters { BinaryDataOutput = true });
    return (buffer.WrittenSpan.ToArray(), jsonLength);
}

static async Task<HttpStatusCode> PostAsync(HttpClient http, (byte[] Body, int JsonLength) request)
{
    using var content = new ByteArrayContent(request.Body);
    content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
    content.Headers.Add(InferRequestReader.HeaderContentLengthHeader, request.JsonLength.ToString(CultureInfo.InvariantCulture));
    using var response = await http.PostAsync("/v2/models/bench/infer", content);
    await response.Content.ReadAsByteArrayAsync();
    return response.StatusCode;
}

static async Task WaitServedAsync(HttpClient http, (byte[] Body, int JsonLength) request)
{
    var deadline = DateTime.UtcNow.AddSeconds(120);
    while (await PostAsync(http, request) != HttpStatusCode.OK)
    {
        if (DateTime.UtcNow > deadline)
        {
            throw new TimeoutException("the benchmark model was not served within 120 s");
        }

        await Task.Delay(200);
    }
}

static async Task<Row> LoadAsync(HttpClient http, (byte[] Body, int JsonLength) request, int concurrency, TimeSpan duration)
{
    var latencies = new List<double>[concurrency];
    var errors = 0;
    var sw = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async i =>
    {
        var mine = latencies[i] = new List<double>(4096);
        while (sw.Elapsed < duration)
        {
            var t = Stopwatch.GetTimestamp();
            var status = await PostAsync(http, request);
            mine.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            if (status != HttpStatusCode.OK)
            {
                Interlocked.Increment(ref errors);
            }
        }
    }));
    var elapsed = sw.Elapsed.TotalSeconds;
    var all = latencies.SelectMany(l => l).ToList();
    return new Row("e2e", "1 row/req", concurrency, (all.Count - errors) / elapsed, Percentile(all, 0.5), Percentile(all, 0.99), errors);
}

static double Percentile(List<double> values, double p)
{
    if (values.Count == 0)
    {
        return double.NaN;
    }

    var sorted = values.Order().ToArray();
    return sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];
}

internal sealed record Row(string Setup, string Load, int Concurrency, double Throughput, double P50Ms, double P99Ms, int Errors = 0);
