// Serving benchmark: raw ONNX Runtime in-process vs end-to-end through InferenceApi (binary tensor extension) at
// concurrency 1/8/32/64 with dynamic batching off and on, then the three client transports side by side (REST JSON,
// REST binary, gRPC) at concurrency 1 and 32, all in one run on this machine.
//   dotnet run -c Release --project bench/Platform.Bench.Serving [-- --help]
using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.InteropServices;
using Aspire.Hosting;
using Grpc.Core;
using Grpc.Net.Client;
using Platform.Inference.OpenInference;
using Platform.Inference.OpenInference.Grpc;
using Platform.Inference.Protocol;
using Platform.OnnxModels;
using Platform.OnnxRuntime;
using Platform.TestSupport;

if (args.Contains("--help"))
{
    Console.WriteLine("""
        Platform.Bench.Serving: raw ONNX Runtime in-process vs the whole platform end to end, in one run.
          --seconds N                measurement time per configuration (default 5)
          --worker-threads N         ModelWorker:IntraOpNumThreads, the workers' global ORT pool (default: the AppHost's
                                     run-mode setting, a thread per core; 0 = ORT's default)
          --queue-delay-us N         batching-on max queue delay (default 2000)
          --pack-below N             InferenceApi's WorkerRouting:PackBelow (default: the AppHost's run-mode setting)
          --coalesce-calls N         InferenceApi's WorkerRouting:CoalesceCallsInFlight (default 2; 0 = one worker call per
                                     request, the behaviour before requests shared calls)
          --ledger-calls N           InferenceApi's Tenancy:Ledger:CallsInFlight (default 2; 0 = one Redis script per request
                                     for admission and one for the charge, the behaviour before requests shared scripts)
          --api-setting K=V          any InferenceApi setting (repeatable), e.g. InferenceApi:OverlapAdmission=false (the
                                     behaviour before admission overlapped serving)
          --service-env K=V          an environment variable of every service (repeatable); trace sampling defaults to the
                                     published platform's (OTEL_TRACES_SAMPLER=parentbased_traceidratio, _ARG=0.1), e.g.
                                     OTEL_TRACES_SAMPLER=parentbased_always_on measures run mode's (every request traced)
          --worker-env K=V           an environment variable of the model workers only (repeatable)
          --peer-intra-op-threads N  the hand-rolled peer's intra-op threads (default: ONNX Runtime's, a spinning thread per
                                     core; 1 = concurrent requests use the cores instead of one run's threads)
          --execution-provider P     auto | cuda | cpu for the raw sessions and the workers (default auto, the workers' default)
          --raw-only                 only the raw ONNX Runtime part (no platform)
          --hold-seconds N           keep the platform up N s at the end (prints the pids and wrk commands for both models)
          --threads                  CPU time per thread of each end-to-end configuration
        Prints tables and RESULT lines: e2e_over_raw, server_cpu_over_raw_c64, batching_efficiency_c32, added_p50_ms_c1,
        tiny_over_peer_c64, tiny_added_p50_ms_c1 (Platform vs the hand-rolled peer, bench/Platform.Bench.Peer, on a
        12->24->5 MLP), bench_over_peer_c64, bench_added_p50_ms_c1 (the same on the benchmark model) and more;
        raw_ort_* always.
        """);
    return 0;
}

var seconds = args.SkipWhile(a => a != "--seconds").Skip(1).Select(double.Parse).FirstOrDefault(5);
var measure = TimeSpan.FromSeconds(seconds);
// ONNX Runtime intra-op threads per worker replica (0 = ORT's default, one per core; absent = the AppHost's run-mode
// setting, the cores divided among the replicas).
var workerThreads = IntOption(args, "--worker-threads");
// The batching-on queue delay (µs).
var queueDelayMicros = IntOption(args, "--queue-delay-us") ?? 2000;
// InferenceApi's WorkerRouting:PackBelow (0 = spread by least outstanding requests; N = pack onto the first replica
// below N requests in flight; absent = the AppHost's run-mode setting).
var packBelow = IntOption(args, "--pack-below");
var coalesceCalls = IntOption(args, "--coalesce-calls");
// Any other InferenceApi setting, e.g. --api-setting InferenceApi:OverlapAdmission=false (repeatable).
var apiSettings = KeyValues(args, "--api-setting");
// Environment of every service, e.g. --service-env OTEL_TRACES_SAMPLER=parentbased_traceidratio (repeatable).
var serviceEnvironment = KeyValues(args, "--service-env");
// Trace sampling as the published platform has it (AppHost, publish mode: one trace in ten, decided at the root), not
// run mode's always_on, which is a developer's setting for the dashboard: at thousands of requests a second no
// deployment records every request, and recording them costs InferenceApi ~8 % and the workers ~16 % of their CPU
// (docs/inference-api.md). --service-env OTEL_TRACES_SAMPLER=parentbased_always_on measures run mode's setting.
static bool IsTraceSampling((string Key, string Value) variable) => variable.Key.StartsWith("OTEL_TRACES_SAMPLER", StringComparison.Ordinal);
if (!serviceEnvironment.Any(IsTraceSampling))
{
    serviceEnvironment = [.. serviceEnvironment, ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "0.1")];
}
// Environment of the model workers only, e.g. --worker-env DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0 (repeatable).
var workerEnvironment = KeyValues(args, "--worker-env");
var peerThreads = IntOption(args, "--peer-intra-op-threads");
var ledgerCalls = IntOption(args, "--ledger-calls");
// Execution provider of the raw sessions and of the workers (ModelWorker:ExecutionProvider).
var providerName = args.SkipWhile(a => a != "--execution-provider").Skip(1).FirstOrDefault() ?? "auto";
if (!Enum.TryParse<ExecutionProviderPreference>(providerName, ignoreCase: true, out var provider) || !Enum.IsDefined(provider))
{
    Console.Error.WriteLine($"--execution-provider: '{providerName}' is not auto, cuda or cpu");
    Environment.Exit(2);
}
var model = ModelCatalog.Generate("benchmark");
Console.WriteLine($"load average at start: {File.ReadAllText("/proc/loadavg").Trim()}");
const int Features = 512;
const int TinyFeatures = 12;
Console.WriteLine($"trace sampling: {string.Join(' ', serviceEnvironment.Where(IsTraceSampling).Select(e => $"{e.Key}={e.Value}"))}");
Console.WriteLine($"benchmark model: {model.ParameterCount:N0} parameters, {model.FlopsPerSample / 1e6:F1} MFLOP/sample; {Environment.ProcessorCount} cores");

// (a) raw ONNX Runtime in-process, the official package (Microsoft.ML.OnnxRuntime.Gpu.Linux). The process environment
// gets the workers' global pool (one thread per core, no spinning); "raw ORT" itself runs with ONNX Runtime's own
// defaults instead: a private pool of one thread per core that spins.
var rows = new List<Row>();
var rawCpuMsPerInference = new Dictionary<int, double>();
double rawBest;
double rawSingleP50Ms;
using var ort = new OrtEnvironment(new OrtEnvironmentOptions { IntraOpNumThreads = 0, AllowSpinning = false });
using (var session = ort.CreateSession(model.Bytes, new InferenceSessionOptions
{
    ExecutionProvider = provider,
    IntraOpNumThreads = Environment.ProcessorCount,
}))
{
    Console.WriteLine($"raw ORT {ort.Version} on {session.ExecutionProvider}" +
        (session.ExecutionProviderFallbackReason is { } reason ? $" (CUDA not used: {reason})" : string.Empty));
    var random = new Random(1);
    var single = RandomRows(random, 1);
    for (var i = 0; i < 50; i++)
    {
        Run(session, single, 1);
    }

    rows.Add(TimedRuns("raw ORT", 1, measure, _ => Run(session, single, 1)));
    rawSingleP50Ms = rows[^1].P50Ms;
    rawBest = 0;
    foreach (var batch in new[] { 8, 32, 64, 128 })
    {
        var input = RandomRows(random, batch);
        Run(session, input, batch);
        rows.Add(TimedRuns("raw ORT", batch, measure / 2, _ => Run(session, input, batch)));
        rawBest = Math.Max(rawBest, rows[^1].Throughput);
    }

    rawBest = Math.Max(rawBest, rows[0].Throughput);
}

// Control: the same single-row run with the workers' settings (the global pool, whose threads do not spin:
// ModelWorker's AllowSpinning default), so the table shows how much of the workers' compute time is that setting.
using (var session = ort.CreateSession(model.Bytes, new InferenceSessionOptions { ExecutionProvider = provider }))
{
    var single = RandomRows(new Random(1), 1);
    for (var i = 0; i < 50; i++)
    {
        Run(session, single, 1);
    }

    rows.Add(TimedRuns("raw ORT no spinning", 1, measure / 2, _ => Run(session, single, 1)));

    // Control: the same single row, each run ~1 ms after the last one ended, as requests arrive at a worker at c1 (e2e
    // c1 answers 700-900 requests/s). Back to back the weights stay in the caches; a millisecond later other work on the
    // host (this machine's other processes, other tenants sharing the L3) has evicted part of them, whatever the worker does.
    rows.Add(TimedRuns("raw ORT 1 ms apart", 1, measure / 2, _ => Run(session, single, 1), before: () => Thread.Sleep(1)));

    // CPU time per inference with the workers' settings: unlike wall-clock figures it hardly moves when other processes
    // compete for the cores (idle pool threads sleep, so the process only burns CPU for the work).
    foreach (var cpuBatch in new[] { 1, 64 })
    {
        var cpuInput = RandomRows(new Random(3), cpuBatch);
        Run(session, cpuInput, cpuBatch);
        using var self = Process.GetCurrentProcess();
        var cpuBefore = self.TotalProcessorTime;
        var inferences = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < measure / 2)
        {
            Run(session, cpuInput, cpuBatch);
            inferences += cpuBatch;
        }
        self.Refresh();
        rawCpuMsPerInference[cpuBatch] = (self.TotalProcessorTime - cpuBefore).TotalMilliseconds / inferences;
    }

    // Control: the same, alternating between two sessions of the model, as two worker replicas taking turns do. Each
    // session holds its own ~20 MB of weights (replicas are processes: nothing is shared); a single row streams all of
    // them, so this shows what losing the CPU cache to the other copy costs.
    using var other = ort.CreateSession(model.Bytes, new InferenceSessionOptions { ExecutionProvider = provider });
    for (var i = 0; i < 50; i++)
    {
        Run(i % 2 == 0 ? session : other, single, 1);
    }

    rows.Add(TimedRuns("raw ORT 2 sessions alt.", 1, measure / 2, i => Run(i % 2 == 0 ? session : other, single, 1)));
}

if (args.Contains("--raw-only"))
{
    Console.WriteLine($"{"setup",-22} {"load",-10} {"conc",5} {"inf/s",10} {"p50 ms",9} {"p99 ms",9}");
    foreach (var row in rows)
    {
        Console.WriteLine($"{row.Setup,-23} {row.Load,-9} {row.Concurrency,5} {row.Throughput,10:F0} {row.P50Ms,9:F3} {row.P99Ms,9:F3}");
    }
    PrintRawResults(rows, rawBest, rawCpuMsPerInference);
    return 0;
}

// (b) the platform, started here the way the integration tests start it.
const string AdminKey = "bench-admin-key";
await using var app = await PlatformApp.StartAsync([$"--Parameters:admin-api-key={AdminKey}"], builder =>
{
    var worker = builder.Project("model-worker");
    if (workerThreads is not null)
    {
        worker.WithEnvironment("ModelWorker__IntraOpNumThreads", workerThreads.Value.ToString(CultureInfo.InvariantCulture));
    }

    worker.WithEnvironment("ModelWorker__ExecutionProvider", provider.ToString().ToLowerInvariant());
    foreach (var (name, value) in workerEnvironment)
    {
        worker.WithEnvironment(name, value);
    }

    if (packBelow is not null)
    {
        builder.Project("inference-api").WithEnvironment("WorkerRouting__PackBelow", packBelow.Value.ToString(CultureInfo.InvariantCulture));
    }

    if (coalesceCalls is not null)
    {
        builder.Project("inference-api").WithEnvironment("WorkerRouting__CoalesceCallsInFlight", coalesceCalls.Value.ToString(CultureInfo.InvariantCulture));
    }

    foreach (var (key, value) in apiSettings)
    {
        builder.Project("inference-api").WithEnvironment(key.Replace(":", "__", StringComparison.Ordinal), value);
    }

    foreach (var (name, value) in serviceEnvironment)
    {
        foreach (var service in new[] { "inference-api", "model-worker", "admin-api", "context-enrichment" })
        {
            builder.Project(service).WithEnvironment(name, value);
        }
    }

    if (ledgerCalls is not null)
    {
        builder.Project("inference-api").WithEnvironment("Tenancy__Ledger__CallsInFlight", ledgerCalls.Value.ToString(CultureInfo.InvariantCulture));
    }
});
using var admin = app.CreateHttpClient("admin-api");
admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
using (var content = new ByteArrayContent(model.Bytes))
{
    content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
    (await admin.PostAsync("/api/models/bench/versions", content)).EnsureSuccessStatusCode();
}

(await admin.PostAsync("/api/models/bench/versions/1/activate", null)).EnsureSuccessStatusCode();
// Straight to InferenceApi's own port: Aspire's run-mode proxy is not part of the platform (Kubernetes puts a Service there).
var inferenceUri = app.ReplicaAddress("inference-api", 0);
using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256, UseProxy = false, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) })
{
    BaseAddress = inferenceUri,
};
// Inference is enforced like in production: a tenant key, a rate limit (set high enough never to bite) and a usage record per request.
var tenant = await Platform.TestSupport.PlatformTenants.CreateAsync(admin, "bench");
http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", tenant.Key);
var benchRow = RandomRows(new Random(2), 1);
var request = BuildRequest(benchRow, Features, TensorEncoding.Binary);
// The lean load generator (LeanHttpConnection: one keep-alive HTTP/1.1 connection per caller, the request encoded once)
// drives every REST step; the HttpClient sender is measured beside it once, so the table shows what the client costs.
var restBinary = LeanHttpConnection.Factory(inferenceUri, "/v2/models/bench/infer", tenant.Key, request);
var restBinaryHttpClient = Shared(Sender(http, "/v2/models/bench/infer", request));
await WaitServedAsync(restBinary);

// Every process on the path JIT-compiles its hot code to tier 1 only after enough calls: without this the first
// measured step pays for the compiler threads (measured: several CPU-ms per request at concurrency 1).
await LoadAsync(restBinary, 8, TimeSpan.FromSeconds(Math.Max(5, seconds)));

var results = new Dictionary<(bool Batching, int Concurrency), Row>();
foreach (var batching in new[] { false, true })
{
    var settings = batching
        ? new { maxBatchSize = 64, maxQueueDelayMicros = queueDelayMicros, queueCapacity = 4096, cacheEnabled = false, cacheTtlSeconds = 300 }
        : new { maxBatchSize = 1, maxQueueDelayMicros = 0, queueCapacity = 4096, cacheEnabled = false, cacheTtlSeconds = 300 };
    (await admin.PutAsJsonAsync("/api/models/bench/settings", settings)).EnsureSuccessStatusCode();
    // Every worker picks the settings up (notification + reconcile); meanwhile, what the idle platform burns.
    var idleBefore = CpuSeconds(app);
    await Task.Delay(TimeSpan.FromSeconds(3));
    var idleAfter = CpuSeconds(app);
    Console.WriteLine(string.Join(", ", idleAfter.Select(c => string.Create(CultureInfo.InvariantCulture, $"{c.Key} {(c.Value - idleBefore[c.Key]) / 3:F3}"))) + " cores while idle");
    foreach (var concurrency in new[] { 1, 8, 32, 64 })
    {
        var (measured, threadsBefore, threadsAfter) = await MeasureAsync(app, restBinary, concurrency, measure);
        var served = measured.Throughput * measure.TotalSeconds;
        var result = measured with { Setup = $"e2e batching {(batching ? "on" : "off")}" };
        if (args.Contains("--threads"))
        {
            // Which threads (grouped by name) the CPU went to: tells runtime spinning from socket work from ONNX Runtime.
            var top = threadsAfter.Select(t => (t.Key, Ms: (t.Value - threadsBefore.GetValueOrDefault(t.Key)) * 1000 / served))
                .Where(t => t.Ms > 0.01).OrderByDescending(t => t.Ms).Take(12);
            Console.WriteLine($"{result.Setup} c{concurrency} CPU ms/inference by thread: " + string.Join("; ", top.Select(t => string.Create(CultureInfo.InvariantCulture, $"{t.Key} {t.Ms:F3}"))));
        }
        results[(batching, concurrency)] = result;
        rows.Add(result);
    }

    if (batching)
    {
        var (measured, _, _) = await MeasureAsync(app, restBinaryHttpClient, 64, measure);
        rows.Add(measured with { Setup = "e2e on, HttpClient" });
    }
}

// The client transports side by side, batching on: REST with JSON tensors both ways, REST with the binary tensor
// extension both ways, and gRPC (raw_input_contents / raw_output_contents) on InferenceApi's HTTP/2 endpoint.
using var grpcChannel = GrpcChannel.ForAddress(app.ReplicaAddress("inference-api", 0, "grpc"), new GrpcChannelOptions
{
    HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true, UseProxy = false, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) },
});
var grpcClient = new GRPCInferenceService.GRPCInferenceServiceClient(grpcChannel);
var grpcRequest = GrpcInferCodec.WriteRequest("bench", null, [new InferTensor("input", DataType.Fp32, [1, Features], MemoryMarshal.AsBytes(benchRow.AsSpan()).ToArray())]);
var grpcHeaders = new Metadata { { "authorization", $"Bearer {tenant.Key}" } };
var transports = new (string Name, Func<ISender> Send)[]
{
    ("REST JSON", LeanHttpConnection.Factory(inferenceUri, "/v2/models/bench/infer", tenant.Key, BuildRequest(benchRow, Features, TensorEncoding.JsonFlat))),
    ("REST binary", restBinary),
    ("gRPC (Grpc.Net.Client)", Shared(async () =>
    {
        using var call = grpcClient.ModelInferAsync(grpcRequest, new CallOptions(grpcHeaders));
        try
        {
            await call;
            return (true, (await call.ResponseHeadersAsync).GetValue("server-timing"));
        }
        catch (RpcException)
        {
            return (false, null);
        }
    })),
};
var transportRows = new Dictionary<(string Transport, int Concurrency), Row>();
foreach (var concurrency in new[] { 1, 32 })
{
    foreach (var (name, send) in transports)
    {
        await LoadAsync(send, concurrency, TimeSpan.FromSeconds(2)); // warm-up
        var (measured, _, _) = await MeasureAsync(app, send, concurrency, measure);
        transportRows[(name, concurrency)] = measured with { Setup = name };
    }
}

// The compute case against the same peer: the benchmark model, the request bytes of the e2e steps, Platform as the
// e2e steps left it (batching on). The peer runs a row per request on one session, by default with ONNX Runtime's
// threads (a spinning pool of a thread per core), what a team would write, or as --peer-intra-op-threads says.
Dictionary<(string Server, int Concurrency), Row> benchPeerRows;
var benchPath = Path.Combine(Path.GetTempPath(), $"platform-bench-benchmark-{Environment.ProcessId}.onnx");
await File.WriteAllBytesAsync(benchPath, model.Bytes);
using (var benchPeer = PeerProcess.Start(benchPath, peerThreads))
{
    var benchPeerSend = LeanHttpConnection.Factory(benchPeer.Address, "/v2/models/bench/infer", null, request);
    await WaitServedAsync(benchPeerSend);
    benchPeerRows = await AgainstPeerAsync(app, benchPeer, "bench", measure,
        [(1, "Platform", restBinary), (1, "peer", benchPeerSend), (64, "Platform", restBinary), (64, "peer", benchPeerSend)]);
}

File.Delete(benchPath);

// The overhead case: a 12->24->5 MLP, where the model costs microseconds and serving is nearly everything. Platform
// (governance on: key, rate limit, usage record; batching on) against the hand-rolled peer (bench/Platform.Bench.Peer:
// one ASP.NET Core process, ONNX Runtime per request, nothing else), with the same client and request bytes.
var tiny = ModelCatalog.Generate("mlp", new ModelRequest { Features = TinyFeatures, Hidden = [24], Classes = 5 });
using (var content = new ByteArrayContent(tiny.Bytes))
{
    content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
    (await admin.PostAsync("/api/models/tiny/versions?activate=true", content)).EnsureSuccessStatusCode();
}

(await admin.PutAsJsonAsync("/api/models/tiny/settings", new { maxBatchSize = 64, maxQueueDelayMicros = queueDelayMicros, queueCapacity = 4096, cacheEnabled = false, cacheTtlSeconds = 300 })).EnsureSuccessStatusCode();
var tinyRequest = BuildRequest(RandomRows(new Random(4), 1, TinyFeatures), TinyFeatures, TensorEncoding.Binary);
var tinyPlatform = LeanHttpConnection.Factory(inferenceUri, "/v2/models/tiny/infer", tenant.Key, tinyRequest);
await WaitServedAsync(tinyPlatform);
var tinyPath = Path.Combine(Path.GetTempPath(), $"platform-bench-tiny-{Environment.ProcessId}.onnx");
await File.WriteAllBytesAsync(tinyPath, tiny.Bytes);
using var peer = PeerProcess.Start(tinyPath, peerThreads);
using var peerHttp = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256, UseProxy = false, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) })
{
    BaseAddress = peer.Address,
};
var tinyPeer = LeanHttpConnection.Factory(peer.Address, "/v2/models/tiny/infer", null, tinyRequest);
await WaitServedAsync(tinyPeer);
var tinyRows = await AgainstPeerAsync(app, peer, "tiny", measure,
[
    (1, "Platform", tinyPlatform), (1, "peer", tinyPeer), (64, "Platform", tinyPlatform), (64, "peer", tinyPeer),
    (64, "Platform, HttpClient", Shared(Sender(http, "/v2/models/tiny/infer", tinyRequest))),
    (64, "peer, HttpClient", Shared(Sender(peerHttp, "/v2/models/tiny/infer", tinyRequest))),
]);

// An independent check of the lean client: wrk (Debian's package, eng/install.sh), one thread, the same request bytes.
var wrkRows = new List<(string Server, int Concurrency, WrkResult Result)>();
if (Wrk.Find() is { } wrk)
{
    foreach (var concurrency in new[] { 1, 64 })
    {
        wrkRows.Add(("Platform", concurrency, await Wrk.RunAsync(wrk, inferenceUri, "/v2/models/tiny/infer", tenant.Key, tinyRequest, concurrency, measure)));
        wrkRows.Add(("peer", concurrency, await Wrk.RunAsync(wrk, peer.Address, "/v2/models/tiny/infer", null, tinyRequest, concurrency, measure)));
    }
}

File.Delete(tinyPath);

Console.WriteLine();
Console.WriteLine($"the hand-rolled peer: intra-op threads {peerThreads?.ToString(CultureInfo.InvariantCulture) ?? "ONNX Runtime's default (a spinning thread per core)"}, a row per run");
PrintAgainstPeer("benchmark model (5 M)", benchPeerRows);
PrintAgainstPeer("tiny 12->24->5 MLP", tinyRows);

if (wrkRows.Count > 0)
{
    Console.WriteLine();
    Console.WriteLine($"{"tiny, wrk -t1",-24} {"conc",5} {"inf/s",8} {"p50 ms",8} {"p99 ms",8} {"errors",7}");
    foreach (var (server, concurrency, result) in wrkRows)
    {
        Console.WriteLine($"{server,-24} {concurrency,5} {result.Throughput,8:F0} {result.P50Ms,8:F3} {result.P99Ms,8:F3} {result.Errors,7}");
    }
}
else
{
    Console.WriteLine("wrk not on PATH (eng/install.sh installs it): no independent check of the load generator");
}

Console.WriteLine();
Console.WriteLine($"{"transport (batching on)",-24} {"conc",5} {"inf/s",8} {"p50 ms",8} {"p99 ms",8} {"errors",7} {"client",7} {"api",7} {"workers",8} {"sum",7}  (CPU ms per inference)");
foreach (var ((name, concurrency), row2) in transportRows.OrderBy(r => r.Key.Concurrency))
{
    var cpu = row2.CpuMsPerInference!;
    Console.WriteLine($"{name,-24} {concurrency,5} {row2.Throughput,8:F0} {row2.P50Ms,8:F3} {row2.P99Ms,8:F3} {row2.Errors,7} {cpu.GetValueOrDefault("client"),7:F3} {cpu.GetValueOrDefault("inference-api"),7:F3} {cpu.GetValueOrDefault("model-worker"),8:F3} {cpu.Values.Sum(),7:F3}");
}

Console.WriteLine();
Console.WriteLine($"worker intra-op threads {workerThreads switch { null => "AppHost run mode (a thread per core)", 0 => "ORT default", var n => n.Value.ToString(CultureInfo.InvariantCulture) }}, routing {packBelow switch { null => "AppHost run mode (pack below 64)", 0 => "spread", var n => $"pack below {n}" }}, batching-on max queue delay {queueDelayMicros} µs (idle dispatch: only reached when a batch runs that long)");
Console.WriteLine($"{"setup",-22} {"load",-10} {"conc",5} {"inf/s",10} {"p50 ms",9} {"p99 ms",9} {"errors",7}");
foreach (var row in rows)
{
    Console.WriteLine($"{row.Setup,-23} {row.Load,-9} {row.Concurrency,5} {row.Throughput,10:F0} {row.P50Ms,9:F3} {row.P99Ms,9:F3} {row.Errors,7}");
}

// Where an e2e request's time goes (medians, ms): InferenceApi's Server-Timing phases; hop = worker round trip minus
// the worker's queue + compute (routing, the gRPC call both ways, the worker's gRPC service); client = client latency
// minus InferenceApi's total.
Console.WriteLine();
Console.WriteLine($"{"time split (p50 ms)",-22} {"conc",5} {"client",7} {"enforce",8} {"read",6} {"decode",7} {"hop",6} {"queue",7} {"compute",8} {"encode",7} {"batch",6}");
foreach (var row in rows.Where(r => r.Split is not null))
{
    double Get(string name) => row.Split!.TryGetValue(name, out var v) ? v : double.NaN;
    Console.WriteLine($"{row.Setup,-22} {row.Concurrency,5} {Get("client"),7:F3} {Get("enforce"),8:F3} {Get("read"),6:F3} {Get("decode"),7:F3} {Get("hop"),6:F3} {Get("queue"),7:F3} {Get("compute"),8:F3} {Get("encode"),7:F3} {Get("batch"),6:F0}");
}

Console.WriteLine("enforce = auth (key lookup, in memory after the first request) + admit (Redis script: rate limit + budget; for a busy key without a budget, a token leased ahead) + record (Redis script: usage record + charge); concurrent requests share scripts");

// CPU each process spent per inference (user + system, from /proc): what the cores pay beyond ONNX Runtime's own compute.
Console.WriteLine();
Console.WriteLine($"{"CPU ms per inference",-22} {"conc",5} {"client",7} {"api",7} {"workers",8} {"sum",7} {"cores",6}");
foreach (var row in rows.Where(r => r.CpuMsPerInference is not null))
{
    var cpu = row.CpuMsPerInference!;
    Console.WriteLine($"{row.Setup,-22} {row.Concurrency,5} {cpu.GetValueOrDefault("client"),7:F3} {cpu.GetValueOrDefault("inference-api"),7:F3} {cpu.GetValueOrDefault("model-worker"),8:F3} {cpu.Values.Sum(),7:F3} {row.CoresBusy,6:F2}");
}

Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"raw ORT best: {2000.0 / rawBest:F3} core-ms per inference if it kept both cores busy"));

Console.WriteLine();
Console.WriteLine($"{"KB allocated per inf.",-22} {"conc",5} {"api",8} {"workers",8}  (.NET GC allocations; ONNX Runtime's native buffers not included)");
// Platform's steps only: the columns are its services', which stand idle while the peer is measured.
var platformRows = benchPeerRows.Concat(tinyRows).Where(r => r.Key.Server.StartsWith("Platform", StringComparison.Ordinal)).Select(r => r.Value);
foreach (var row in rows.Concat(platformRows).Where(r => r.AllocatedKbPerInference is not null))
{
    var allocated = row.AllocatedKbPerInference!;
    Console.WriteLine($"{row.Setup,-22} {row.Concurrency,5} {allocated.GetValueOrDefault("inference-api"),8:F2} {allocated.GetValueOrDefault("model-worker"),8:F2}");
}
if (!serviceEnvironment.Any(e => e.Key == "DOTNET_GCDynamicAdaptationMode" && e.Value == "0"))
{
    // The services run Server GC with DATAS (.NET's default), whose total-allocated counter sums only the heaps active at
    // the moment: while DATAS takes a heap away, the counter stands still (or drops), so a step measured then reads low.
    Console.WriteLine("allocations are read from dotnet.gc.heap.total_allocated, which stands still while Server GC's DATAS changes the heap count " +
        "(dotnet/runtime#131069): a row near 0 is that; --service-env DOTNET_GCDynamicAdaptationMode=0 measures them exactly (fixed heaps)");
}

Console.WriteLine($"load average: {File.ReadAllText("/proc/loadavg").Trim()}");

var e2eOverRaw = results[(true, 64)].Throughput / rawBest;
var batchingGain = results[(true, 32)].Throughput / results[(false, 32)].Throughput;
var rawGain32 = rows.Single(r => r.Setup == "raw ORT" && r.Load == "batch 32").Throughput / rows[0].Throughput;
var addedP50 = results[(true, 1)].P50Ms - rawSingleP50Ms;
var c64Cpu = results[(true, 64)].CpuMsPerInference!;
var rawBestCpuMs = rawCpuMsPerInference.Values.Min();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"raw ORT gain batch 1 -> 32: {rawGain32:F2}x; raw ORT best CPU {rawBestCpuMs:F4} ms/inference (no spinning, batch 64)"));
Console.WriteLine();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT e2e_over_raw={e2eOverRaw:F3}"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"RESULT server_cpu_over_raw_c64={(c64Cpu.GetValueOrDefault("inference-api") + c64Cpu.GetValueOrDefault("model-worker")) / rawBestCpuMs:F3}"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT batching_efficiency_c32={batchingGain / rawGain32:F3}"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT added_p50_ms_c1={addedP50:F3}"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT tiny_over_peer_c64={tinyRows[("Platform", 64)].Throughput / tinyRows[("peer", 64)].Throughput:F3}"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT tiny_added_p50_ms_c1={tinyRows[("Platform", 1)].P50Ms - tinyRows[("peer", 1)].P50Ms:F3}"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT batching_gain_c32={batchingGain:F3}"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT bench_over_peer_c64={benchPeerRows[("Platform", 64)].Throughput / benchPeerRows[("peer", 64)].Throughput:F3}"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT bench_added_p50_ms_c1={benchPeerRows[("Platform", 1)].P50Ms - benchPeerRows[("peer", 1)].P50Ms:F3}"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT grpc_over_rest_binary_c32={transportRows[("gRPC (Grpc.Net.Client)", 32)].Throughput / transportRows[("REST binary", 32)].Throughput:F3}"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT rest_json_over_rest_binary_c32={transportRows[("REST JSON", 32)].Throughput / transportRows[("REST binary", 32)].Throughput:F3}"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT grpc_added_p50_ms_c1={transportRows[("gRPC (Grpc.Net.Client)", 1)].P50Ms - rawSingleP50Ms:F3}"));
PrintRawResults(rows, rawBest, rawCpuMsPerInference);
if (args.SkipWhile(a => a != "--hold-seconds").Skip(1).Select(double.Parse).FirstOrDefault() is > 0 and var hold)
{
    // The platform stays up (tiny model active) for outside tools: a profiler on the pids, wrk with the script below.
    var directory = Directory.CreateTempSubdirectory("platform-bench-hold-");
    try
    {
        var script = await Wrk.WriteScriptAsync(directory.CreateSubdirectory("tiny"), tenant.Key, tinyRequest);
        var benchScript = await Wrk.WriteScriptAsync(directory.CreateSubdirectory("bench"), tenant.Key, request);
        Console.WriteLine($"HOLD {hold} s: inference-api pid {string.Join(' ', app.ProcessIds("inference-api"))}, model-worker pids {string.Join(' ', app.ProcessIds("model-worker"))}");
        Console.WriteLine($"HOLD wrk -t1 -c64 -d30s -s {script} {new Uri(inferenceUri, "/v2/models/tiny/infer")}");
        Console.WriteLine($"HOLD wrk -t1 -c64 -d30s -s {benchScript} {new Uri(inferenceUri, "/v2/models/bench/infer")}");
        // Ctrl+C or SIGTERM ends the hold early and stops the platform and the peer below in order (after a kill, the peer
        // stops when its stdin pipe closes and DCP stops the platform when this process is gone).
        using var stop = new CancellationTokenSource();
        void Stop(PosixSignalContext signal)
        {
            signal.Cancel = true;
            stop.Cancel();
        }

        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        await Task.Delay(TimeSpan.FromSeconds(hold), stop.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }
    finally
    {
        directory.Delete(recursive: true);
    }
}

return 0;

static void PrintRawResults(List<Row> rows, double rawBest, Dictionary<int, double> cpuMsPerInference)
{
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT raw_ort_no_spinning_cpu_ms_per_inf_batch1={cpuMsPerInference[1]:F4}"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT raw_ort_no_spinning_cpu_ms_per_inf_batch64={cpuMsPerInference[64]:F4}"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT raw_ort_batch1_inf_s={rows[0].Throughput:F0}"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT raw_ort_batch1_p50_ms={rows[0].P50Ms:F3}"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT raw_ort_best_inf_s={rawBest:F0}"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT raw_ort_no_spinning_batch1_p50_ms={rows.Single(r => r.Setup == "raw ORT no spinning").P50Ms:F3}"));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT raw_ort_no_spinning_1ms_apart_batch1_p50_ms={rows.Single(r => r.Setup == "raw ORT 1 ms apart").P50Ms:F3}"));
}

// Platform against a hand-rolled peer on one model: each step (concurrency, server, client) after its own warm-up, the
// peer's CPU read from its process beside the platform's.
static async Task<Dictionary<(string Server, int Concurrency), Row>> AgainstPeerAsync(
    PlatformApp app, PeerProcess peer, string label, TimeSpan measure, (int Concurrency, string Server, Func<ISender> Send)[] steps)
{
    var rows = new Dictionary<(string Server, int Concurrency), Row>();
    foreach (var (concurrency, server, send) in steps)
    {
        await LoadAsync(send, concurrency, TimeSpan.FromSeconds(2)); // warm-up (JIT tiers in every process on the path)
        var peerCpuBefore = peer.CpuSeconds();
        var (measured, _, _) = await MeasureAsync(app, send, concurrency, measure);
        var served = Math.Max(1, measured.Throughput * measure.TotalSeconds);
        var cpu = new Dictionary<string, double>(measured.CpuMsPerInference!) { ["peer"] = (peer.CpuSeconds() - peerCpuBefore) * 1000 / served };
        rows[(server, concurrency)] = measured with { Setup = $"{label} {server}", CpuMsPerInference = cpu };
    }

    return rows;
}

static void PrintAgainstPeer(string title, Dictionary<(string Server, int Concurrency), Row> rows)
{
    Console.WriteLine();
    Console.WriteLine($"{title,-24} {"conc",5} {"inf/s",8} {"p50 ms",8} {"p99 ms",8} {"errors",7} {"client",7} {"server",7} {"api",7} {"workers",8}  (CPU ms per inference; server = api + workers, or the peer)");
    foreach (var ((name, concurrency), row) in rows)
    {
        var cpu = row.CpuMsPerInference!;
        var isPeer = name.StartsWith("peer", StringComparison.Ordinal);
        var server = isPeer ? cpu["peer"] : cpu.GetValueOrDefault("inference-api") + cpu.GetValueOrDefault("model-worker");
        var parts = isPeer ? string.Empty
            : string.Create(CultureInfo.InvariantCulture, $" {cpu.GetValueOrDefault("inference-api"),7:F3} {cpu.GetValueOrDefault("model-worker"),8:F3}");
        Console.WriteLine($"{name,-24} {concurrency,5} {row.Throughput,8:F0} {row.P50Ms,8:F3} {row.P99Ms,8:F3} {row.Errors,7} {cpu.GetValueOrDefault("client"),7:F3} {server,7:F3}{parts}");
    }
}

// One measured step: load for `duration` with CPU (per process) and thread CPU read before and after.
static async Task<(Row Row, Dictionary<string, double> ThreadsBefore, Dictionary<string, double> ThreadsAfter)> MeasureAsync(
    PlatformApp app, Func<ISender> send, int concurrency, TimeSpan duration)
{
    var allocatedBefore = await AllocatedBytesAsync(app);
    var cpuBefore = CpuSeconds(app);
    var threadsBefore = ThreadCpuSeconds(app);
    var row = await LoadAsync(send, concurrency, duration);
    var cpuAfter = CpuSeconds(app);
    var threadsAfter = ThreadCpuSeconds(app);
    var allocatedAfter = await AllocatedBytesAsync(app);
    var served = Math.Max(1, row.Throughput * duration.TotalSeconds);
    return (row with
    {
        AllocatedKbPerInference = allocatedAfter.ToDictionary(a => a.Key, a => (a.Value - allocatedBefore.GetValueOrDefault(a.Key)) / 1024 / served),
        CpuMsPerInference = cpuAfter.ToDictionary(c => c.Key, c => (cpuAfter[c.Key] - cpuBefore.GetValueOrDefault(c.Key)) * 1000 / served),
        CoresBusy = cpuAfter.Sum(c => c.Value - cpuBefore.GetValueOrDefault(c.Key)) / duration.TotalSeconds,
    }, threadsBefore, threadsAfter);
}

// The integer after "--option", or null when the option is absent.
static int? IntOption(string[] args, string option) =>
    args.SkipWhile(a => a != option).Skip(1).Select(a => (int?)int.Parse(a, CultureInfo.InvariantCulture)).FirstOrDefault();

// Every value of a repeatable "--option K=V" (V empty when there is no '=').
static (string Key, string Value)[] KeyValues(string[] args, string option) =>
    [.. args.Select((a, i) => (a, i)).Where(x => x.a == option && x.i + 1 < args.Length)
        .Select(x => args[x.i + 1].Split('=', 2)).Select(kv => (kv[0], kv.Length > 1 ? kv[1] : string.Empty))];

static float[] RandomRows(Random random, int rows, int features = Features) =>
    Enumerable.Range(0, rows * features).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();

static void Run(InferenceSession session, float[] input, int rows)
{
    using var result = session.Run([new NamedTensor("input", TensorData.From(input, rows, Features))]);
}

// A REST request: binary tensor data both ways, or JSON both ways (null JSON length).
static (byte[] Body, int? JsonLength) BuildRequest(float[] row, int features, TensorEncoding encoding)
{
    var buffer = new ArrayBufferWriter<byte>();
    var tensor = new InferTensor("input", DataType.Fp32, [1, features], MemoryMarshal.AsBytes(row.AsSpan()).ToArray());
    var binary = encoding == TensorEncoding.Binary;
    var jsonLength = InferClientCodec.WriteRequest(buffer, [tensor], encoding, parameters: new InferRequestParameters { BinaryDataOutput = binary });
    return (buffer.WrittenSpan.ToArray(), binary ? jsonLength : null);
}

static Func<ISender> Shared(Func<Task<(bool Ok, string? ServerTiming)>> send) => () => new SharedSender(send);

static Func<Task<(bool Ok, string? ServerTiming)>> Sender(HttpClient http, string path, (byte[] Body, int? JsonLength) request) => async () =>
{
    using var content = new ByteArrayContent(request.Body);
    content.Headers.ContentType = new MediaTypeHeaderValue(request.JsonLength is null ? "application/json" : "application/octet-stream");
    if (request.JsonLength is { } length)
    {
        content.Headers.Add(InferRequestReader.HeaderContentLengthHeader, length.ToString(CultureInfo.InvariantCulture));
    }

    try
    {
        using var response = await http.PostAsync(path, content);
        await response.Content.ReadAsByteArrayAsync();
        return (response.StatusCode == HttpStatusCode.OK, response.Headers.TryGetValues("Server-Timing", out var values) ? values.FirstOrDefault() : null);
    }
    catch (HttpRequestException)
    {
        return (false, null); // counted as an error (a reset connection), not the end of the run
    }
};

// Server-Timing "name;dur=ms, name;desc=x" -> name -> value.
static Dictionary<string, double> ParseServerTiming(string header)
{
    var phases = new Dictionary<string, double>(StringComparer.Ordinal);
    foreach (var part in header.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
    {
        var fields = part.Split(';');
        foreach (var field in fields.Skip(1))
        {
            var kv = field.Split('=', 2);
            if (kv.Length == 2 && kv[0] is "dur" or "desc" && double.TryParse(kv[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
            {
                phases[fields[0]] = value;
            }
        }
    }

    return phases;
}

static async Task WaitServedAsync(Func<ISender> connect)
{
    var deadline = DateTime.UtcNow.AddSeconds(120);
    using var send = connect();
    // A server not listening yet is a failed send (senders count connection errors), so this also waits for the peer to start.
    while (!(await send.SendAsync(timing: false)).Ok)
    {
        if (DateTime.UtcNow > deadline)
        {
            throw new TimeoutException("the benchmark model was not served within 120 s");
        }

        await Task.Delay(200);
    }
}

static async Task<Row> LoadAsync(Func<ISender> connect, int concurrency, TimeSpan duration)
{
    var senders = Enumerable.Range(0, concurrency).Select(_ => connect()).ToList();
    LoadResult result;
    try
    {
        // Lean connections are driven from one thread by poll, like wrk; other senders (HttpClient, gRPC) by one async
        // caller each.
        result = LeanHttpConnection.Of(senders) is { } lean
            ? await Task.Factory.StartNew(() => LeanHttpConnection.Drive(lean, duration), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)
            : await CallersAsync(senders, duration);
    }
    finally
    {
        senders.ForEach(s => s.Dispose());
    }

    return ToRow(result, concurrency);
}

static async Task<LoadResult> CallersAsync(List<ISender> senders, TimeSpan duration)
{
    var latencies = new List<double>[senders.Count];
    var timings = new List<(double ClientMs, string Header)>[senders.Count];
    var errors = 0;
    var sw = Stopwatch.StartNew();
    await Task.WhenAll(senders.Select(async (send, i) =>
    {
        var mine = latencies[i] = new List<double>(16384);
        var myTimings = timings[i] = new List<(double, string)>(4096);
        for (var n = 0; sw.Elapsed < duration; n++)
        {
            var t = Stopwatch.GetTimestamp();
            // Server-Timing of every 8th request is enough for the medians of the time split, and keeps the lean client
            // from allocating a string per request.
            var (ok, serverTiming) = await send.SendAsync(timing: n % 8 == 0);
            var ms = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
            mine.Add(ms);
            if (serverTiming is not null)
            {
                myTimings.Add((ms, serverTiming));
            }

            if (!ok)
            {
                Interlocked.Increment(ref errors);
            }
        }
    }));
    return new LoadResult([.. latencies.SelectMany(l => l)], [.. timings.SelectMany(t => t)], errors, sw.Elapsed.TotalSeconds);
}

static Row ToRow(LoadResult result, int concurrency)
{
    var (all, timings, errors, elapsed) = result;
    // Median of each phase InferenceApi reports, plus "client": what the client saw beyond InferenceApi's total
    // (the protocol to InferenceApi, both ends' socket and scheduling time).
    var parsed = timings.Select(t => (t.ClientMs, Phases: ParseServerTiming(t.Header))).ToList();
    var split = new SortedDictionary<string, double>(StringComparer.Ordinal);
    foreach (var name in new[] { "read", "decode", "worker", "queue", "compute", "batch", "encode", "total", "auth", "admit", "record" })
    {
        var values = parsed.Where(p => p.Phases.ContainsKey(name)).Select(p => p.Phases[name]).ToList();
        if (values.Count > 0)
        {
            split[name] = Percentile(values, 0.5);
        }
    }

    var hop = parsed.Where(p => p.Phases.ContainsKey("worker")).Select(p => p.Phases["worker"] - p.Phases["queue"] - p.Phases["compute"]).ToList();
    if (hop.Count > 0)
    {
        split["hop"] = Percentile(hop, 0.5);
    }

    // Enforcement (tenant key, rate limit + budget, usage record): inside InferenceApi's "total", reported apart.
    static double Enforcement(Dictionary<string, double> phases) =>
        phases.GetValueOrDefault("auth") + phases.GetValueOrDefault("admit") + phases.GetValueOrDefault("record");
    var enforcement = parsed.Where(p => p.Phases.ContainsKey("record")).Select(p => Enforcement(p.Phases)).ToList();
    if (enforcement.Count > 0)
    {
        split["enforce"] = Percentile(enforcement, 0.5);
    }

    var client = parsed.Where(p => p.Phases.ContainsKey("total")).Select(p => p.ClientMs - p.Phases["total"]).ToList();
    if (client.Count > 0)
    {
        split["client"] = Percentile(client, 0.5);
    }

    return new Row("e2e", "1 row/req", concurrency, (all.Count - errors) / elapsed, Percentile(all, 0.5), Percentile(all, 0.99), errors, split);
}

// Bytes the .NET GC has allocated so far in InferenceApi and in the worker replicas (summed), from their /metrics
// (OpenTelemetry's runtime instrumentation); the scrapes themselves allocate a little, the same in every step.
static async Task<Dictionary<string, double>> AllocatedBytesAsync(PlatformApp app)
{
    using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
    var result = new Dictionary<string, double>(StringComparer.Ordinal);
    foreach (var name in new[] { "inference-api", "model-worker" })
    {
        for (var replica = 0; replica < app.ProcessIds(name).Count; replica++)
        {
            var scrape = await http.GetStringAsync(new Uri(app.ReplicaAddress(name, replica), "/metrics"));
            result[name] = result.GetValueOrDefault(name) + (PrometheusText.Value(scrape, "dotnet_gc_heap_total_allocated_bytes_total") ?? double.NaN);
        }
    }

    return result;
}

// CPU seconds (user + system) of the client (this process), InferenceApi and the worker replicas so far.
static Dictionary<string, double> CpuSeconds(PlatformApp app)
{
    var ticks = 100.0; // USER_HZ: /proc reports clock ticks of 1/100 s on Linux
    double Of(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / ticks;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    var result = new Dictionary<string, double> { ["client"] = Of(Environment.ProcessId) };
    foreach (var name in new[] { "inference-api", "model-worker" })
    {
        result[name] = app.ProcessIds(name).Sum(Of);
    }

    return result;
}

// CPU seconds per (process, thread name), summed over threads of that name.
static Dictionary<string, double> ThreadCpuSeconds(PlatformApp app)
{
    var result = new Dictionary<string, double>(StringComparer.Ordinal);
    var processes = new List<(string Name, int Pid)> { ("client", Environment.ProcessId) };
    foreach (var name in new[] { "inference-api", "model-worker" })
    {
        processes.AddRange(app.ProcessIds(name).Select(pid => (name, pid)));
    }

    foreach (var (name, pid) in processes)
    {
        string[] tasks;
        try
        {
            tasks = Directory.GetDirectories($"/proc/{pid}/task");
        }
        catch (IOException)
        {
            continue;
        }

        foreach (var task in tasks)
        {
            try
            {
                var stat = File.ReadAllText(Path.Combine(task, "stat"));
                var open = stat.IndexOf('(');
                var close = stat.LastIndexOf(')');
                var comm = stat[(open + 1)..close];
                var fields = stat[(close + 2)..].Split(' ');
                var seconds = (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
                var key = $"{name}/{comm}";
                result[key] = result.GetValueOrDefault(key) + seconds;
            }
            catch (IOException)
            {
                // the thread exited
            }
        }
    }

    return result;
}

// In-process runs of `rowsPerRun` rows for `duration`, each timed alone (`before` runs untimed ahead of each; the
// throughput counts it); run i gets i.
static Row TimedRuns(string setup, int rowsPerRun, TimeSpan duration, Action<int> run, Action? before = null)
{
    var latencies = new List<double>();
    var sw = Stopwatch.StartNew();
    for (var i = 0; sw.Elapsed < duration; i++)
    {
        before?.Invoke();
        var t = Stopwatch.GetTimestamp();
        run(i);
        latencies.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
    }

    return new Row(setup, $"batch {rowsPerRun}", 1, latencies.Count * rowsPerRun / sw.Elapsed.TotalSeconds, Percentile(latencies, 0.5), Percentile(latencies, 0.99));
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

internal sealed record Row(string Setup, string Load, int Concurrency, double Throughput, double P50Ms, double P99Ms, int Errors = 0,
    IReadOnlyDictionary<string, double>? Split = null)
{
    public IReadOnlyDictionary<string, double>? CpuMsPerInference { get; init; }

    public double CoresBusy { get; init; }

    public IReadOnlyDictionary<string, double>? AllocatedKbPerInference { get; init; }
}

/// <summary>The hand-rolled peer (bench/Platform.Bench.Peer, built beside this benchmark) as a process on a free port.</summary>
internal sealed class PeerProcess : IDisposable
{
    private readonly Process _process;

    private PeerProcess(Process process, Uri address)
    {
        _process = process;
        Address = address;
    }

    public Uri Address { get; }

    public static PeerProcess Start(string modelPath, int? intraOpThreads)
    {
        // bench/Platform.Bench.Serving/bin/<configuration>/net10.0/ -> bench/Platform.Bench.Peer/bin/<configuration>/net10.0/
        var here = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        var dll = Path.Combine(here.Parent!.Parent!.Parent!.Parent!.FullName, "Platform.Bench.Peer", "bin", here.Parent.Name, here.Name, "Platform.Bench.Peer.dll");
        if (!File.Exists(dll))
        {
            throw new FileNotFoundException($"the peer is not built: {dll}");
        }

        int port;
        using (var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        var address = new Uri($"http://127.0.0.1:{port}");
        // The peer's stdin is a pipe from this process: the peer stops when it closes, so a benchmark killed before it can
        // stop the peer (e.g. a signal to `dotnet run` and to the benchmark at once) does not leave it running.
        var start = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { dll, "--model", modelPath, "--urls", address.ToString(), "--exit-with-stdin", "true" })
        {
            start.ArgumentList.Add(argument);
        }

        if (intraOpThreads is { } threads)
        {
            start.ArgumentList.Add("--intra-op-threads");
            start.ArgumentList.Add(threads.ToString(CultureInfo.InvariantCulture));
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("the peer did not start");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                Console.Error.WriteLine($"peer: {e.Data}");
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new PeerProcess(process, address);
    }

    /// <summary>CPU seconds (user + system) the peer has used.</summary>
    public double CpuSeconds()
    {
        _process.Refresh();
        return _process.TotalProcessorTime.TotalSeconds;
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(5000);
        }

        _process.Dispose();
    }
}
