using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using Npgsql;
using Platform.OnnxModels;
using Platform.Tenancy;
using Platform.TestSupport;

namespace Platform.Chaos.Tests;

/// <summary>
/// A server SIGKILLed while requests are in flight, then started again through the AppHost: every request is answered
/// (200, or 503 with Retry-After, never another status and never past its deadline), serving resumes without restarting
/// any service, and every answered inference has exactly one usage record. docs/hardening.md states what each loss costs.
/// </summary>
public sealed class ServerKillTests(ChaosFixture fixture)
{
    private const int Concurrency = 8;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(35);
    private static readonly string[] Services = ["admin-api", "context-enrichment", "inference-api", "model-worker"];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("redis")]
    [InlineData("postgres")]
    [InlineData("objectstore")]
    public async Task AServerKilledMidBurstCostsOnlyRetryableRefusalsAndNoUsageRecord(string server)
    {
        var tenant = await PlatformTenants.CreateAsync(fixture.Admin, $"{server}-{Guid.NewGuid():N}"[..20], cancellationToken: Ct);
        using var client = fixture.App.CreateReplicaHttpClient("inference-api", 0).WithApiKey(tenant.Key);
        client.Timeout = Deadline;
        await Waits.UntilAsync(async () => (await client.PostAsync($"/v2/models/{ChaosFixture.Model}/infer", Body($"{server}-warm", 0), Ct)).IsSuccessStatusCode,
            TimeSpan.FromSeconds(90), $"{ChaosFixture.Model} served", Ct);
        await fixture.App.WaitForAllHealthyAsync(Ct);
        // A second tenant whose key no replica has seen yet: with the server gone it must still get 200 or 503 + Retry-After.
        var stranger = await PlatformTenants.CreateAsync(fixture.Admin, $"{server}-new-{Guid.NewGuid():N}"[..20], cancellationToken: Ct);
        var pids = Services.ToDictionary(s => s, s => string.Join(",", fixture.App.ProcessIds(s).Order()));

        await using var burst = Burst.Start(client, server, Concurrency);
        await Waits.UntilAsync(() => burst.Answered.Count >= 40, TimeSpan.FromSeconds(60), "40 answers before the kill", Ct);

        await fixture.App.KillAsync(server, cancellationToken: Ct);
        var outcomesAtKill = burst.Outcomes;
        // Load keeps arriving while the server is gone.
        await Waits.UntilAsync(() => burst.Outcomes >= outcomesAtKill + 40, TimeSpan.FromSeconds(60), "40 answers with the server gone", Ct);
        var refusedWhileDown = burst.Refused;
        using (var newcomer = fixture.App.CreateReplicaHttpClient("inference-api", 0).WithApiKey(stranger.Key))
        {
            newcomer.Timeout = Deadline;
            using var first = await newcomer.PostAsync($"/v2/models/{ChaosFixture.Model}/infer", Body($"{server}-newcomer", 1), Ct);
            var text = await first.Content.ReadAsStringAsync(Ct);
            Assert.True(first.StatusCode == HttpStatusCode.OK || (first.StatusCode == HttpStatusCode.ServiceUnavailable && first.Headers.RetryAfter is not null),
                $"a key not cached yet, with {server} gone: {(int)first.StatusCode} {text}");
            if (server == "postgres")
            {
                // Nothing can vouch for an uncached key without the database.
                Assert.Equal(HttpStatusCode.ServiceUnavailable, first.StatusCode);
                Assert.Contains("key directory is unavailable", text, StringComparison.Ordinal);
            }
        }

        // AdminApi answers what needs the server with 503 + Retry-After naming it, never a bare 500.
        if (AdminCallNeeding(server) is var (call, named))
        {
            using var refused = await call();
            var text = await refused.Content.ReadAsStringAsync(Ct);
            Assert.True(refused.StatusCode == HttpStatusCode.ServiceUnavailable && refused.Headers.RetryAfter is not null, $"AdminApi with {server} gone: {(int)refused.StatusCode} {text}");
            Assert.StartsWith($"{{\"error\":\"{named} is unavailable, retry shortly (", text, StringComparison.Ordinal);
        }

        await fixture.App.StartAsync(server, cancellationToken: Ct);
        var answeredAtRestart = burst.Answered.Count;
        var restarted = Stopwatch.StartNew();
        await Waits.UntilAsync(() => burst.Answered.Count >= answeredAtRestart + 40, TimeSpan.FromSeconds(90), "40 answers after the restart", Ct);
        var resumed = restarted.Elapsed;
        await burst.StopAsync();

        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{server}: sent {burst.Sent.Count}, answered {burst.Answered.Count}, refused 503 {burst.Refused} ({refusedWhileDown} while down), resumed {resumed.TotalSeconds:0.0} s after the restart");
        Assert.True(burst.Violations.IsEmpty, $"{burst.Violations.Count} answers other than 200 or 503 + Retry-After:\n{string.Join('\n', burst.Violations.Take(20))}\n{fixture.App.Describe()}\n-- inference-api:\n{fixture.App.Logs("inference-api", 80)}");

        // No service was restarted: the same processes served before and after.
        Assert.Equal(pids, Services.ToDictionary(s => s, s => string.Join(",", fixture.App.ProcessIds(s).Order())));

        // Exactly one record per answered inference; nothing recorded twice.
        var records = await SettledUsageAsync(tenant.Id, burst.Answered.Count);
        var byRequest = records.Where(r => r.RequestId is not null).GroupBy(r => r.RequestId!).ToDictionary(g => g.Key, g => g.ToList());
        Assert.All(burst.Answered, id => Assert.True(byRequest.TryGetValue(id, out var mine) && mine.Count == 1 && mine[0].Status == 200,
            $"answered {id} has {(byRequest.TryGetValue(id, out var found) ? string.Join(",", found.Select(f => f.Status)) : "no")} records"));
        Assert.All(byRequest, r => Assert.True(r.Value.Count == 1, $"{r.Key} recorded {r.Value.Count} times"));
        await fixture.App.WaitForAllHealthyAsync(Ct);
    }

    private (Func<Task<HttpResponseMessage>> Call, string Named)? AdminCallNeeding(string server) => server switch
    {
        "postgres" => (() => fixture.Admin.GetAsync("/api/tenants", Ct), "the database"),
        "objectstore" => (async () =>
        {
            using var onnx = new ByteArrayContent(ModelCatalog.Generate("mlp", new ModelRequest { Seed = 7001 }).Bytes);
            onnx.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/octet-stream");
            return await fixture.Admin.PostAsync("/api/models/chaos-upload/versions", onnx, Ct);
        }, "the object store"),
        _ => null,
    };

    private static JsonContent Body(string id, int seed) =>
        JsonContent.Create(new
        {
            id,
            inputs = new[] { new { name = "input", shape = new[] { 1, 16 }, datatype = "FP32", data = Enumerable.Range(0, 16).Select(i => (float)((i * 31 + seed) % 997) / 997f).ToArray() } },
        });

    private async Task<IReadOnlyList<(string? RequestId, int Status)>> SettledUsageAsync(Guid tenant, int expectedAtLeast)
    {
        var buffer = new UsageBuffer(fixture.Redis);
        var rows = new List<(string?, int)>();
        // The probe answers what is still pending (null once settled); the rows are kept aside for the caller.
        await Waits.UntilAsync<string?>(async () =>
        {
            try
            {
                rows.Clear();
                await using var command = fixture.Db.CreateCommand("SELECT request_id, status FROM usage_records WHERE tenant_id = $1");
                command.Parameters.AddWithValue(tenant);
                await using var reader = await command.ExecuteReaderAsync(Ct);
                while (await reader.ReadAsync(Ct))
                {
                    rows.Add((reader.IsDBNull(0) ? null : reader.GetString(0), reader.GetInt32(1)));
                }

                var backlog = await buffer.BacklogAsync(Ct);
                return rows.Count >= expectedAtLeast && backlog == 0 ? null : $"{rows.Count} records, backlog {backlog}";
            }
            catch (Exception ex) when (ex is NpgsqlException or StackExchange.Redis.RedisException)
            {
                // Connections of this test process died with the server; the pool and the multiplexer recover.
                fixture.Db.Clear();
                return ex.Message;
            }
        }, pending => pending is null, TimeSpan.FromSeconds(90), $"usage of {tenant} settled", Ct);
        return rows;
    }

    /// <summary>Concurrent clients sending inferences with unique ids until stopped, classifying every answer.</summary>
    private sealed class Burst : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private Task[] _clients = [];
        private int _refused;
        private int _outcomes;

        public ConcurrentBag<string> Sent { get; } = [];

        public ConcurrentBag<string> Answered { get; } = [];

        public ConcurrentQueue<string> Violations { get; } = new();

        public int Refused => Volatile.Read(ref _refused);

        public int Outcomes => Volatile.Read(ref _outcomes);

        public static Burst Start(HttpClient client, string prefix, int concurrency)
        {
            var burst = new Burst();
            burst._clients = [.. Enumerable.Range(0, concurrency).Select(c => Task.Run(() => burst.RunAsync(client, $"{prefix}-{c}")))];
            return burst;
        }

        public async Task StopAsync()
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_clients);
        }

        public async ValueTask DisposeAsync()
        {
            await StopAsync();
            _stop.Dispose();
        }

        private async Task RunAsync(HttpClient client, string prefix)
        {
            for (var i = 0; !_stop.IsCancellationRequested; i++)
            {
                var id = $"{prefix}-{i}";
                Sent.Add(id);
                var started = Stopwatch.StartNew();
                try
                {
                    // Not the stop token: a request once sent is answered or times out on its own deadline.
                    using var response = await client.PostAsync($"/v2/models/{ChaosFixture.Model}/infer", Body(id, i), CancellationToken.None);
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        Answered.Add(id);
                    }
                    else if (response.StatusCode == HttpStatusCode.ServiceUnavailable && response.Headers.RetryAfter is not null)
                    {
                        Interlocked.Increment(ref _refused);
                        // A client honours Retry-After; these clients only pause a little, to keep the load on.
                        await Task.Delay(50, CancellationToken.None);
                    }
                    else
                    {
                        Violations.Enqueue($"{id}: {(int)response.StatusCode} (Retry-After {response.Headers.RetryAfter?.ToString() ?? "none"}) {await response.Content.ReadAsStringAsync(CancellationToken.None)}");
                    }
                }
                catch (TaskCanceledException)
                {
                    Violations.Enqueue($"{id}: no answer within {Deadline.TotalSeconds:0} s");
                }
                catch (HttpRequestException ex)
                {
                    Violations.Enqueue($"{id}: {ex.Message} after {started.Elapsed.TotalSeconds:0.0} s");
                }

                Interlocked.Increment(ref _outcomes);
            }
        }
    }
}
