// Soak benchmark (issue 14): the platform under steady open-loop load at a fraction (default 0.7) of the capacity it
// measures first, for --minutes (default 10). Halfway through one model-worker replica is restarted and the response
// cache is flushed from Redis. Prints p50/p99 and RSS per service per minute, RSS at start and end, errors and answered vs
// recorded usage, then the RESULT lines.
//   dotnet run -c Release --project bench/Platform.Bench.Soak -- [--minutes 10] [--fraction 0.7]
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Npgsql;
using Platform.OnnxModels;
using Platform.TestSupport;
using StackExchange.Redis;

var minutes = Option("--minutes", 10.0);
var fraction = Option("--fraction", 0.7);
var calibrationSeconds = Option("--calibration-seconds", 20.0);
string[] services = ["admin-api", "context-enrichment", "inference-api", "model-worker"];

const string AdminKey = "soak-admin-key";
const string Model = "soak-mlp";
Console.WriteLine($"soak: {minutes} min at {fraction:P0} of measured capacity; starting the platform (durable servers)");
await using var app = await PlatformApp.StartAsync([$"--Parameters:admin-api-key={AdminKey}", "--Platform:DurableData=true"]);
using var admin = app.CreateHttpClient("admin-api");
admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
using (var content = new ByteArrayContent(ModelCatalog.Generate("mlp", new ModelRequest { Seed = 3 }).Bytes))
{
    content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
    (await admin.PostAsync($"/api/models/{Model}/versions?activate=true", content)).EnsureSuccessStatusCode();
}

// The response cache on (models default to off), so the flush in the middle has something to flush.
(await admin.PutAsJsonAsync($"/api/models/{Model}/settings", new { maxBatchSize = 32, maxQueueDelayMicros = 1000, queueCapacity = 1024, cacheEnabled = true, cacheTtlSeconds = 600 })).EnsureSuccessStatusCode();
var tenant = await PlatformTenants.CreateAsync(admin, "soak");
using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256, UseProxy = false }) { BaseAddress = app.ReplicaAddress("inference-api", 0), Timeout = TimeSpan.FromSeconds(30) };
http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", tenant.Key);
long sequence = 0;
var answeredIds = new ConcurrentDictionary<string, byte>();

async Task<(bool Ok, double Ms, string? Error)> SendAsync()
{
    var n = Interlocked.Increment(ref sequence);
    var id = $"soak-{n}";
    var started = Stopwatch.GetTimestamp();
    try
    {
        // One in four inputs repeats (cacheable), the rest are fresh.
        var seed = n % 4 == 0 ? (int)(n % 64) : (int)n;
        using var response = await http.PostAsync($"/v2/models/{Model}/infer", JsonContent.Create(new
        {
            id,
            inputs = new[] { new { name = "input", shape = new[] { 1, 16 }, datatype = "FP32", data = Enumerable.Range(0, 16).Select(i => (float)((i * 7919 + seed) % 1009) / 1009f).ToArray() } },
        }));
        var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        if (response.IsSuccessStatusCode)
        {
            answeredIds[id] = 0;
            return (true, ms, null);
        }

        return (false, ms, $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }
    catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
    {
        return (false, Stopwatch.GetElapsedTime(started).TotalMilliseconds, ex.GetType().Name + ": " + ex.Message);
    }
}

// Served everywhere and warm (JIT tier-up) before anything is measured.
var warm = Stopwatch.StartNew();
while (!(await SendAsync()).Ok)
{
    if (warm.Elapsed > TimeSpan.FromSeconds(120))
    {
        throw new TimeoutException("the model was not served within 120 s");
    }

    await Task.Delay(200);
}

await ClosedLoopAsync(16, TimeSpan.FromSeconds(10));
var capacity = await ClosedLoopAsync(16, TimeSpan.FromSeconds(calibrationSeconds));
var rate = capacity * fraction;
Console.WriteLine($"capacity (closed loop, 16 clients, {calibrationSeconds:0} s): {capacity:F0} inf/s; soak rate {rate:F0} inf/s");

using var redis = await ConnectionMultiplexer.ConnectAsync(await app.GetConnectionStringAsync("redis"), Platform.Redis.RedisServiceCollectionExtensions.Configure);
var rssStart = Rss();
var perMinute = new List<(int Minute, long Sent, long Ok, long Errors, double P50, double P99)>();
var errors = 0L;
var errorSamples = new ConcurrentQueue<string>();
var total = TimeSpan.FromMinutes(minutes);
var soak = Stopwatch.StartNew();
var inFlight = new SemaphoreSlim(256);
var pending = new ConcurrentBag<Task>();
var middleDone = false;
// RSS at each minute's end too: start and end alone cannot tell a heap settling under sustained load from a leak.
Console.WriteLine($"{"minute",6} {"sent",8} {"answered",9} {"errors",7} {"p50 ms",8} {"p99 ms",8}  RSS MiB: " + string.Join(" ", services.Select(s => $"{s,18}")));
for (var minute = 1; soak.Elapsed < total; minute++)
{
    var latencies = new ConcurrentBag<double>();
    long sent = 0, ok = 0, failed = 0;
    var minuteEnd = TimeSpan.FromMinutes(Math.Min(minute, minutes));
    var launched = 0L;
    var minuteStart = soak.Elapsed;
    while (soak.Elapsed < minuteEnd)
    {
        if (!middleDone && soak.Elapsed >= total / 2)
        {
            middleDone = true;
            _ = Task.Run(MiddleEventsAsync);
        }

        // Open loop: as many requests as the rate says by now, whatever the latency.
        var due = (long)((soak.Elapsed - minuteStart).TotalSeconds * rate);
        while (launched < due)
        {
            launched++;
            sent++;
            await inFlight.WaitAsync();
            pending.Add(Task.Run(async () =>
            {
                try
                {
                    var (success, ms, error) = await SendAsync();
                    latencies.Add(ms);
                    if (success)
                    {
                        Interlocked.Increment(ref ok);
                    }
                    else
                    {
                        Interlocked.Increment(ref failed);
                        Interlocked.Increment(ref errors);
                        if (errorSamples.Count < 20)
                        {
                            errorSamples.Enqueue(error!);
                        }
                    }
                }
                finally
                {
                    inFlight.Release();
                }
            }));
        }

        await Task.Delay(5);
    }

    await Task.WhenAll(pending);
    pending.Clear();
    var sorted = latencies.Order().ToArray();
    var row = (minute, sent, Interlocked.Read(ref ok), Interlocked.Read(ref failed), Percentile(sorted, 0.5), Percentile(sorted, 0.99));
    perMinute.Add(row);
    var rss = Rss();
    Console.WriteLine($"{row.minute,6} {row.sent,8} {row.Item3,9} {row.Item4,7} {row.Item5,8:F2} {row.Item6,8:F2}           " +
        string.Join(" ", services.Select(s => string.Create(CultureInfo.InvariantCulture, $"{rss[s] / 1048576.0,18:F1}"))));
}

var rssEnd = Rss();
Console.WriteLine();
Console.WriteLine($"{"service",-20} {"RSS start MiB",14} {"RSS end MiB",12}");
foreach (var service in services)
{
    Console.WriteLine($"{service,-20} {rssStart[service] / 1048576.0,14:F1} {rssEnd[service] / 1048576.0,12:F1}");
}

Console.WriteLine("(model-worker: summed over its replicas; the restarted replica's RSS starts again from zero at the restart)");

// Every answered inference must have its usage record once the buffer drained.
await using var db = NpgsqlDataSource.Create(await app.GetConnectionStringAsync("platformdb"));
var buffer = new Platform.Tenancy.UsageBuffer(redis);
long recorded = 0;
var settle = Stopwatch.StartNew();
while (settle.Elapsed < TimeSpan.FromSeconds(120))
{
    await using var command = db.CreateCommand("SELECT count(DISTINCT request_id) FROM usage_records WHERE tenant_id = $1 AND status = 200 AND request_id LIKE 'soak-%'");
    command.Parameters.AddWithValue(tenant.Id);
    recorded = (long)(await command.ExecuteScalarAsync())!;
    if (await buffer.BacklogAsync() == 0 && recorded >= answeredIds.Count)
    {
        break;
    }

    await Task.Delay(500);
}

Console.WriteLine($"answered {answeredIds.Count} (incl. warm-up and calibration), recorded {recorded}, errors {errors}");
foreach (var sample in errorSamples)
{
    Console.WriteLine($"  error: {sample}");
}

var rssGrowth = 100.0 * (rssEnd.Values.Sum() - rssStart.Values.Sum()) / rssStart.Values.Sum();
var p99First = perMinute[0].P99;
var p99Last = perMinute[^1].P99;
Console.WriteLine($"RESULT soak_errors={errors}");
Console.WriteLine($"RESULT soak_answered={answeredIds.Count} soak_recorded={recorded}");
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT soak_rss_growth_pct={rssGrowth:F1}"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"RESULT soak_p99_drift_pct={100.0 * (p99Last - p99First) / p99First:F1}"));
return errors == 0 && recorded == answeredIds.Count ? 0 : 1;

async Task MiddleEventsAsync()
{
    var clock = Stopwatch.StartNew();
    await app.StopAsync("model-worker", 1);
    await app.StartAsync("model-worker", 1);
    Console.WriteLine($"  [middle] model-worker replica 1 restarted in {clock.Elapsed.TotalSeconds:F1} s");
    var server = redis.GetServers().Single();
    long flushed = 0;
    await foreach (var key in server.KeysAsync(pattern: "platform:infer-cache:*"))
    {
        await redis.GetDatabase().KeyDeleteAsync(key);
        flushed++;
    }

    Console.WriteLine($"  [middle] response cache flushed: {flushed} entries deleted from Redis");
}

async Task<double> ClosedLoopAsync(int clients, TimeSpan duration)
{
    var clock = Stopwatch.StartNew();
    long done = 0;
    await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
    {
        while (clock.Elapsed < duration)
        {
            if ((await SendAsync()).Ok)
            {
                Interlocked.Increment(ref done);
            }
        }
    }));
    return done / clock.Elapsed.TotalSeconds;
}

Dictionary<string, long> Rss() => services.ToDictionary(s => s, s => app.ProcessIds(s).Sum(pid =>
{
    var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
}));

static double Percentile(double[] sorted, double p) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))];

double Option(string name, double fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? double.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}
