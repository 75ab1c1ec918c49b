using System.Globalization;
using System.Text.Json;
using Platform.TestSupport;

namespace Platform.Rollouts.Tests;

public sealed class CanaryTests(RolloutFixture platform, ITestOutputHelper output)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task TenPercentCanaryAnswersTenPercentOfTwoThousandRequestsAndVersionedRequestsAreUntouched()
    {
        var model = await platform.CreateModelWithTwoVersionsAsync("canary");
        // All to the candidate first: once every unversioned request lands there, InferenceApi has applied the rollout.
        await platform.StartRolloutAsync(model, new { stableVersion = 1, candidateVersion = 2, candidatePercent = 100 });
        await RolloutFixture.EventuallyAsync("100 % rule applied", async () => (await platform.InferAsync(model)).ModelVersion == 2);
        var (patched, body) = await platform.AdminAsync(HttpMethod.Patch, $"/api/models/{model}/rollout", new { candidatePercent = 10 });
        Assert.True(patched == 200, $"PATCH: {patched} {body}");
        // The first stable answer proves the 10 % rule is in effect.
        await RolloutFixture.EventuallyAsync("10 % rule applied", async () => (await platform.InferAsync(model)).ModelVersion == 1);

        const int requests = 2000;
        const double share = 0.10;
        var outcomes = await platform.InferManyAsync(model, requests);
        Assert.All(outcomes, o => Assert.Equal(200, o.Status));
        var candidate = outcomes.Count(o => o.ModelVersion == 2);
        var stable = outcomes.Count(o => o.ModelVersion == 1);
        Assert.Equal(requests, candidate + stable);
        // Binomial(2000, 0.1): mean 200, sd 13.4; ±4.5 sd is wrong by chance about once in 150,000 runs.
        var bound = 4.5 * Math.Sqrt(requests * share * (1 - share));
        output.WriteLine($"candidate answered {candidate} of {requests} (expected {requests * share} ± {bound:0.#}); stable {stable}");
        Assert.InRange(candidate, requests * share - bound, requests * share + bound);

        // A request that names its version is never split.
        foreach (var version in new long[] { 1, 2 })
        {
            var pinned = await platform.InferManyAsync(model, 50, id: null, version: version);
            Assert.All(pinned, o => Assert.Equal((200, version), (o.Status, o.ModelVersion)));
        }

        // Metrics carry the version that answered.
        using var metrics = platform.App.CreateHttpClient("inference-api");
        var scrape = await metrics.GetStringAsync("/metrics", Ct);
        foreach (var version in new[] { "1", "2" })
        {
            var counted = PrometheusText.Value(scrape, "platform_inference_api_requests_total",
                ("model", model), ("model_version", version), ("http_response_status_code", "200"));
            Assert.True(counted > 0, $"no platform_inference_api_requests_total series of {model} version {version}");
        }

        // Usage records carry it too (the usage writer drains InferenceApi's buffer every 200 ms).
        await RolloutFixture.EventuallyAsync("usage records of both versions", async () =>
        {
            var byVersion = await UsageByVersionAsync(model);
            return byVersion.GetValueOrDefault(2) >= candidate + 50 && byVersion.GetValueOrDefault(1) >= stable + 50;
        });
    }

    [Fact]
    public async Task StickyRolloutsSendTheSameRequestIdOrEntityToTheSameVersion()
    {
        var model = await platform.CreateModelWithTwoVersionsAsync("sticky");
        await platform.StartRolloutAsync(model, new { stableVersion = 1, candidateVersion = 2, candidatePercent = 100, sticky = "request_id" });
        await RolloutFixture.EventuallyAsync("100 % rule applied", async () => (await platform.InferAsync(model)).ModelVersion == 2);
        var (patched, body) = await platform.AdminAsync(HttpMethod.Patch, $"/api/models/{model}/rollout", new { candidatePercent = 50 });
        Assert.True(patched == 200, $"PATCH: {patched} {body}");
        await RolloutFixture.EventuallyAsync("50 % rule applied", async () => (await platform.InferAsync(model)).ModelVersion == 1);

        // Each id is answered by one version every time; across ids both versions answer.
        var ids = Enumerable.Range(0, 40).Select(i => $"req-{i}").ToArray();
        var first = await Task.WhenAll(ids.Select(id => platform.InferAsync(model, id: id)));
        for (var repeat = 0; repeat < 3; repeat++)
        {
            var again = await Task.WhenAll(ids.Select(id => platform.InferAsync(model, id: id)));
            Assert.Equal(first.Select(o => o.ModelVersion), again.Select(o => o.ModelVersion));
        }

        Assert.Contains(first, o => o.ModelVersion == 1);
        Assert.Contains(first, o => o.ModelVersion == 2);

        (patched, body) = await platform.AdminAsync(HttpMethod.Patch, $"/api/models/{model}/rollout", new { sticky = "entity" });
        Assert.True(patched == 200, $"PATCH: {patched} {body}");
        await RolloutFixture.EventuallyAsync("entity stickiness applied", async () =>
        {
            // With entity stickiness the id no longer decides: one id with many entities sees both versions.
            var seen = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => platform.InferAsync(model, id: "req-0", entityId: $"e-{i}")));
            return seen.Select(o => o.ModelVersion).Distinct().Count() == 2;
        });
        var entities = Enumerable.Range(0, 20).Select(i => $"customer-{i}").ToArray();
        var byEntity = await Task.WhenAll(entities.Select(e => platform.InferAsync(model, id: Guid.NewGuid().ToString(), entityId: e)));
        var repeated = await Task.WhenAll(entities.Select(e => platform.InferAsync(model, id: Guid.NewGuid().ToString(), entityId: e)));
        Assert.Equal(byEntity.Select(o => o.ModelVersion), repeated.Select(o => o.ModelVersion));
    }

    private async Task<Dictionary<long, long>> UsageByVersionAsync(string model)
    {
        await using var command = platform.Database.CreateCommand("SELECT version, count(*) FROM usage_records WHERE model = $1 AND status = 200 GROUP BY version");
        command.Parameters.AddWithValue(model);
        await using var reader = await command.ExecuteReaderAsync(Ct);
        var counts = new Dictionary<long, long>();
        while (await reader.ReadAsync(Ct))
        {
            counts[reader.GetInt64(0)] = reader.GetInt64(1);
        }

        return counts;
    }
}
