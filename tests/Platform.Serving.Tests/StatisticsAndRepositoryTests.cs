using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.InteropServices;
using System.Text.Json;
using Grpc.Core;
using Platform.Inference.OpenInference;
using Platform.Inference.OpenInference.Grpc;
using Platform.Inference.Protocol;
using Platform.OnnxModels;
using Platform.TestSupport;

namespace Platform.Serving.Tests;

/// <summary>Triton's statistics and model repository extensions, over REST and gRPC, against the running platform.</summary>
[Collection(WorkerFailureTests.WorkerRestarts)]
public sealed class StatisticsAndRepositoryTests(ServingFixture fixture)
{
    private const int Features = 16;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static InferTensor Input(int rows, int seed, int features = Features)
    {
        var random = new Random(seed);
        var values = Enumerable.Range(0, rows * features).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
        return new InferTensor("input", DataType.Fp32, [rows, features], MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
    }

    [Fact]
    public async Task StatisticsCountTheRequestsSentOverBothTransportsAndTheCache()
    {
        var version = await fixture.Client.UploadAsync("stats-mlp", ModelCatalog.Generate("mlp", new ModelRequest { Seed = 44 }).Bytes, Ct);
        await fixture.Client.ActivateAsync("stats-mlp", version, Ct);
        // The readiness probe is itself an inference: counted below.
        await fixture.Client.WaitServedAsync("stats-mlp", version, Input(2, 0), Ct);
        var probes = await SuccessCountAsync("stats-mlp");

        for (var i = 0; i < 6; i++)
        {
            var (status, _, _) = await fixture.Client.PostAsync("/v2/models/stats-mlp/infer", [Input(2, i)], TensorEncoding.Binary, ct: Ct);
            Assert.Equal(200, status);
        }

        using var channel = GrpcServing.Channel(fixture);
        var client = GrpcServing.Client(channel);
        var key = GrpcServing.Key(fixture);
        for (var i = 0; i < 4; i++)
        {
            await client.ModelInferAsync(GrpcInferCodec.WriteRequest("stats-mlp", null, [Input(2, 100 + i)]), GrpcServing.With(key, Ct));
        }

        // The same request three times with the cache on: a miss (run on a worker), then two hits (not run).
        var cached = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            using var call = client.ModelInferAsync(GrpcInferCodec.WriteRequest("stats-mlp", null, [Input(2, 999)],
                parameters: new InferRequestParameters { Cache = true }), GrpcServing.With(key, Ct));
            await call;
            cached.Add((await call.ResponseHeadersAsync).GetValue("platform-cache")!);
        }

        Assert.Equal(["miss", "hit", "hit"], cached);

        var expectedRequests = probes + 6 + 4 + 1;
        var rest = await EventuallyAsync(async () =>
        {
            var body = await fixture.Client.Inference.GetFromJsonAsync<JsonElement>("/v2/models/stats-mlp/stats", Ct);
            var hits = body.GetProperty("model_stats")[0].GetProperty("inference_stats").GetProperty("cache_hit").GetProperty("count").GetUInt64();
            return (hits == 2, body);
        }, "both cache hits in the statistics");
        var stats = Assert.Single(rest.GetProperty("model_stats").EnumerateArray());
        Assert.Equal(("stats-mlp", "1"), (stats.GetProperty("name").GetString(), stats.GetProperty("version").GetString()));
        var inference = stats.GetProperty("inference_stats");
        ulong Count(string name) => inference.GetProperty(name).GetProperty("count").GetUInt64();
        Assert.Equal(expectedRequests, Count("success"));
        Assert.Equal(expectedRequests, Count("queue"));
        Assert.Equal(expectedRequests, Count("compute_input"));
        Assert.Equal(expectedRequests, Count("compute_infer"));
        Assert.Equal(expectedRequests, Count("compute_output"));
        Assert.Equal(0UL, Count("fail"));
        Assert.Equal((2UL, 1UL), (Count("cache_hit"), Count("cache_miss")));
        Assert.True(inference.GetProperty("compute_infer").GetProperty("ns").GetUInt64() > 0);
        // Every request had 2 rows; cache hits are not inferences.
        Assert.Equal(2 * expectedRequests, stats.GetProperty("inference_count").GetUInt64());
        var batches = stats.GetProperty("batch_stats").EnumerateArray().ToList();
        Assert.Equal(stats.GetProperty("execution_count").GetUInt64(), (ulong)batches.Sum(b => (long)b.GetProperty("compute_infer").GetProperty("count").GetUInt64()));
        Assert.Equal(2 * expectedRequests, (ulong)batches.Sum(b => (long)(b.GetProperty("batch_size").GetUInt64() * b.GetProperty("compute_infer").GetProperty("count").GetUInt64())));
        Assert.Equal(0UL, stats.GetProperty("queue_depth").GetUInt64());
        Assert.InRange((long)stats.GetProperty("last_inference").GetUInt64(), DateTimeOffset.UtcNow.AddMinutes(-2).ToUnixTimeMilliseconds(), DateTimeOffset.UtcNow.AddSeconds(5).ToUnixTimeMilliseconds());

        // gRPC says the same.
        var grpc = Assert.Single((await client.ModelStatisticsAsync(new ModelStatisticsRequest { Name = "stats-mlp" }, GrpcServing.With(key, Ct))).ModelStats);
        Assert.Equal((expectedRequests, 2UL, 1UL, 2 * expectedRequests), (grpc.InferenceStats.Success.Count, grpc.InferenceStats.CacheHit.Count, grpc.InferenceStats.CacheMiss.Count, grpc.InferenceCount));
        Assert.Equal(stats.GetProperty("execution_count").GetUInt64(), grpc.ExecutionCount);

        // By version, in the list of every model, and 404 for a version that is not active.
        Assert.Equal(HttpStatusCode.OK, (await fixture.Client.Inference.GetAsync("/v2/models/stats-mlp/versions/1/stats", Ct)).StatusCode);
        using var missing = await fixture.Client.Inference.GetAsync("/v2/models/stats-mlp/versions/9/stats", Ct);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("model 'stats-mlp' has no active version 9", (await missing.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("error").GetString());
        var all = await fixture.Client.Inference.GetFromJsonAsync<JsonElement>("/v2/models/stats", Ct);
        Assert.Contains(all.GetProperty("model_stats").EnumerateArray(), s => s.GetProperty("name").GetString() == "stats-mlp");
        var error = await GrpcServing.FailsAsync(client.ModelStatisticsAsync(new ModelStatisticsRequest { Name = "stats-none" }, GrpcServing.With(key, Ct)));
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
    }

    [Fact]
    public async Task QueueDepthIsReportedWhileRequestsWaitAndCountsMatchWhatWasAnswered()
    {
        // The heavy benchmark model, one row per run: 48 concurrent requests queue up on the workers.
        const int features = 512;
        var model = ModelCatalog.Generate("benchmark", new ModelRequest { Features = features });
        var version = await fixture.Client.UploadAsync("stats-queue", model.Bytes, Ct);
        await fixture.Client.SetSettingsAsync("stats-queue", new { maxBatchSize = 1, maxQueueDelayMicros = 0, queueCapacity = 4096, cacheEnabled = false, cacheTtlSeconds = 60 }, Ct);
        await fixture.Client.ActivateAsync("stats-queue", version, Ct);
        var input = Input(1, 5, features);
        await fixture.Client.WaitServedAsync("stats-queue", version, input, Ct);
        var before = await SuccessCountAsync("stats-queue");

        var answered = 0;
        var sent = 0;
        var seenDepth = 0UL;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var burst = Task.WhenAll(Enumerable.Range(0, 48).Select(async _ =>
        {
            while (Volatile.Read(ref seenDepth) == 0 && !stop.IsCancellationRequested)
            {
                Interlocked.Increment(ref sent);
                var (status, _, _) = await fixture.Client.PostAsync("/v2/models/stats-queue/infer", [input], TensorEncoding.Binary, ct: Ct);
                Assert.Equal(200, status);
                Interlocked.Increment(ref answered);
            }
        }));
        while (!burst.IsCompleted && Volatile.Read(ref seenDepth) == 0)
        {
            var stats = await fixture.Client.Inference.GetFromJsonAsync<JsonElement>("/v2/models/stats-queue/stats", Ct);
            Volatile.Write(ref seenDepth, stats.GetProperty("model_stats")[0].GetProperty("queue_depth").GetUInt64());
        }

        await burst;
        Assert.True(seenDepth > 0, $"no request was seen waiting in {sent} requests");
        var after = await fixture.Client.Inference.GetFromJsonAsync<JsonElement>("/v2/models/stats-queue/stats", Ct);
        var final = after.GetProperty("model_stats")[0];
        Assert.Equal(0UL, final.GetProperty("queue_depth").GetUInt64());
        Assert.Equal(before + (ulong)answered, final.GetProperty("inference_stats").GetProperty("success").GetProperty("count").GetUInt64());
        Assert.Equal(final.GetProperty("inference_count").GetUInt64(), final.GetProperty("execution_count").GetUInt64());
        Assert.True(final.GetProperty("inference_stats").GetProperty("queue").GetProperty("ns").GetUInt64() > 0);
    }

    [Fact]
    public async Task TheRepositoryExtensionLoadsAndUnloadsThroughActivationWithTheAdminKey()
    {
        using var admin = fixture.App.CreateHttpClient("admin-api");
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ServingFixture.AdminKey);
        var model = ModelCatalog.Generate("mlp", new ModelRequest { Seed = 45 });
        var v1 = await fixture.Client.UploadAsync("repo-mlp", model.Bytes, Ct);
        var v2 = await fixture.Client.UploadAsync("repo-mlp", ModelCatalog.Generate("mlp", new ModelRequest { Seed = 46 }).Bytes, Ct);
        Assert.Equal((1L, 2L), (v1, v2));

        using var repository = new HttpClient { BaseAddress = fixture.Client.Inference.BaseAddress };
        repository.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ServingFixture.AdminKey);
        using var channel = GrpcServing.Channel(fixture);
        var client = GrpcServing.Client(channel);
        var asAdmin = GrpcServing.With(ServingFixture.AdminKey, Ct);

        // Registered, not active: UNAVAILABLE, and not served.
        Assert.All(await IndexAsync(repository, "repo-mlp"), e => Assert.Equal("UNAVAILABLE", e.GetProperty("state").GetString()));
        Assert.Equal(404, (await fixture.Client.PostAsync("/v2/models/repo-mlp/infer", [Input(1, 1)], TensorEncoding.Binary, ct: Ct)).Status);

        // gRPC load of version 1 returns once a worker serves it.
        await client.RepositoryModelLoadAsync(new RepositoryModelLoadRequest
        {
            ModelName = "repo-mlp",
            Parameters = { ["version"] = new ModelRepositoryParameter { Int64Param = 1 } },
        }, asAdmin);
        var (status, body, response) = await fixture.Client.PostAsync("/v2/models/repo-mlp/infer", [Input(1, 1)], TensorEncoding.Binary, ct: Ct);
        Assert.True(status == 200, System.Text.Encoding.UTF8.GetString(body));
        Assert.Equal("1", ServingClient.Decode(body, response).ModelVersion);
        var index = await IndexAsync(repository, "repo-mlp");
        Assert.Equal(["READY", "UNAVAILABLE"], index.Select(e => e.GetProperty("state").GetString()));

        // REST load without a version: the newest.
        using (var load = await repository.PostAsync("/v2/repository/models/repo-mlp/load", null, Ct))
        {
            Assert.True(load.IsSuccessStatusCode, await load.Content.ReadAsStringAsync(Ct));
        }

        (status, body, response) = await fixture.Client.PostAsync("/v2/models/repo-mlp/infer", [Input(1, 1)], TensorEncoding.Binary, ct: Ct);
        Assert.Equal(("2", 200), (ServingClient.Decode(body, response).ModelVersion, status));
        var ready = await client.RepositoryIndexAsync(new RepositoryIndexRequest { Ready = true }, asAdmin);
        Assert.Equal(["1", "2"], ready.Models.Where(m => m.Name == "repo-mlp").Select(m => m.Version));

        // Only the admin key: a tenant key is PERMISSION_DENIED (403), none UNAUTHENTICATED (401).
        var tenant = await GrpcServing.FailsAsync(client.RepositoryIndexAsync(new RepositoryIndexRequest(), GrpcServing.With(GrpcServing.Key(fixture), Ct)));
        Assert.Equal((StatusCode.PermissionDenied, "Authorization: the key is not the admin key"), (tenant.StatusCode, tenant.Status.Detail));
        var anonymous = await GrpcServing.FailsAsync(client.RepositoryModelUnloadAsync(new RepositoryModelUnloadRequest { ModelName = "repo-mlp" }, GrpcServing.With(null, Ct)));
        Assert.Equal(StatusCode.Unauthenticated, anonymous.StatusCode);
        using (var forbidden = await fixture.Client.Inference.PostAsync("/v2/repository/index", null, Ct))
        {
            Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        }

        var unknown = await GrpcServing.FailsAsync(client.RepositoryModelLoadAsync(new RepositoryModelLoadRequest { ModelName = "repo-none" }, asAdmin));
        Assert.Equal((StatusCode.NotFound, "name: no model 'repo-none' in the repository"), (unknown.StatusCode, unknown.Status.Detail));
        var config = await GrpcServing.FailsAsync(client.RepositoryModelLoadAsync(new RepositoryModelLoadRequest
        {
            ModelName = "repo-mlp",
            Parameters = { ["config"] = new ModelRepositoryParameter { StringParam = "{}" } },
        }, asAdmin));
        Assert.Equal(StatusCode.InvalidArgument, config.StatusCode);

        // Unload deactivates every version: no longer served.
        using (var unload = await repository.PostAsync("/v2/repository/models/repo-mlp/unload", null, Ct))
        {
            Assert.True(unload.IsSuccessStatusCode, await unload.Content.ReadAsStringAsync(Ct));
        }

        Assert.All(await IndexAsync(repository, "repo-mlp"), e => Assert.Equal("UNAVAILABLE", e.GetProperty("state").GetString()));
        Assert.Equal(404, (await fixture.Client.PostAsync("/v2/models/repo-mlp/infer", [Input(1, 1)], TensorEncoding.Binary, ct: Ct)).Status);
        using (var registry = await admin.GetAsync("/api/models/repo-mlp", Ct))
        {
            Assert.Empty((await registry.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("activeVersions").EnumerateArray());
        }
    }

    private static async Task<List<JsonElement>> IndexAsync(HttpClient repository, string model)
    {
        using var response = await repository.PostAsJsonAsync("/v2/repository/index", new { ready = false }, Ct);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync(Ct));
        var entries = (await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).EnumerateArray().Where(e => e.GetProperty("name").GetString() == model).ToList();
        Assert.NotEmpty(entries);
        return entries;
    }

    private async Task<ulong> SuccessCountAsync(string model)
    {
        var stats = await fixture.Client.Inference.GetFromJsonAsync<JsonElement>($"/v2/models/{model}/stats", Ct);
        return stats.GetProperty("model_stats")[0].GetProperty("inference_stats").GetProperty("success").GetProperty("count").GetUInt64();
    }

    private static async Task<JsonElement> EventuallyAsync(Func<Task<(bool Done, JsonElement Body)>> probe, string what) =>
        (await Waits.UntilAsync(probe, r => r.Done, TimeSpan.FromSeconds(20), what, Ct)).Body;
}
