using System.Net;
using System.Text.Json;

namespace Platform.Rollouts.Tests;

public sealed class RolloutApiTests(RolloutFixture platform)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("PUT", "")]
    [InlineData("GET", "")]
    [InlineData("PATCH", "")]
    [InlineData("DELETE", "")]
    [InlineData("POST", "/rollback")]
    public async Task EveryRolloutRouteNeedsTheAdminKey(string method, string suffix)
    {
        using var anonymous = platform.App.CreateHttpClient("admin-api");
        using var response = await anonymous.SendAsync(new HttpRequestMessage(new HttpMethod(method), $"/api/models/anything/rollout{suffix}"), Ct);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Theory]
    [InlineData("""{"candidateVersion": 2, "candidatePercent": 10}""", "stableVersion: is required")]
    [InlineData("""{"stableVersion": 1, "candidateVersion": 1, "candidatePercent": 10}""", "candidateVersion: must differ")]
    [InlineData("""{"stableVersion": 1, "candidateVersion": 2, "candidatePercent": 101}""", "candidatePercent: 101 is not between 0 and 100")]
    [InlineData("""{"stableVersion": 1.5, "candidateVersion": 2, "candidatePercent": 1}""", "stableVersion: 1.5 is not a positive integer")]
    [InlineData("""{"stableVersion": 1, "candidateVersion": 2, "candidatePercent": 1, "mode": "blue"}""", "mode: 'blue' is not one of canary, shadow")]
    [InlineData("""{"stableVersion": 1, "candidateVersion": 2, "candidatePercent": 1, "sticky": "ip"}""", "sticky: 'ip' is not one of")]
    [InlineData("""{"stableVersion": 1, "candidateVersion": 2, "candidatePercent": 1, "promotionSteps": [50, 20]}""", "promotionSteps[1]: 20 must be above")]
    [InlineData("""{"stableVersion": 1, "candidateVersion": 2, "candidatePercent": 1, "guardrails": {"maxErrorRate": 2}}""", "guardrails.maxErrorRate")]
    [InlineData("""{"stableVersion": 1, "candidateVersion": 2, "candidatePercent": 1, "guardrails": {"p99": 2}}""", "guardrails.p99: unknown field")]
    [InlineData("""{"stableVersion": 1, "candidateVersion": 2, "candidatePercent": 1, "windowSeconds": 0}""", "windowSeconds: 0 is not between")]
    [InlineData("""{"stableVersion": 1, "candidateVersion": 2, "percent": 1}""", "percent: unknown field")]
    public async Task BadRolloutsAre400NamingTheField(string body, string expected)
    {
        var (status, error) = await platform.AdminAsync(HttpMethod.Put, "/api/models/anything/rollout", body);
        Assert.Equal(400, status);
        Assert.Contains(expected, error.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownModelsVersionsAndRolloutsAre404()
    {
        var (status, error) = await platform.AdminAsync(HttpMethod.Put, "/api/models/no-such-model/rollout", new { stableVersion = 1, candidateVersion = 2, candidatePercent = 5 });
        Assert.Equal((404, "name: no model 'no-such-model'"), (status, error.GetProperty("error").GetString()));
        (status, _) = await platform.AdminAsync(HttpMethod.Get, "/api/models/no-such-model/rollout");
        Assert.Equal(404, status);
        (status, _) = await platform.AdminAsync(HttpMethod.Patch, "/api/models/no-such-model/rollout", new { candidatePercent = 5 });
        Assert.Equal(404, status);

        var model = await platform.CreateModelWithTwoVersionsAsync("api");
        (status, error) = await platform.AdminAsync(HttpMethod.Put, $"/api/models/{model}/rollout", new { stableVersion = 1, candidateVersion = 7, candidatePercent = 5 });
        Assert.Equal(404, status);
        Assert.Equal($"candidateVersion: model '{model}' has no version 7", error.GetProperty("error").GetString());
    }

    [Fact]
    public async Task EveryChangeIsAnEventAndEndingTheRolloutRestoresNewestVersionRouting()
    {
        var model = await platform.CreateModelWithTwoVersionsAsync("events");
        var created = await platform.StartRolloutAsync(model, new
        {
            stableVersion = 1, candidateVersion = 2, candidatePercent = 0, sticky = "entity",
            guardrails = new { maxErrorRate = 0.05, maxP95LatencyMs = 500 }, windowSeconds = 30, promotionSteps = new[] { 25, 50, 100 },
        });
        Assert.Equal("running", created.GetProperty("state").GetString());
        Assert.Equal(0.05, created.GetProperty("guardrails").GetProperty("maxErrorRate").GetDouble());
        Assert.Equal(30, created.GetProperty("windowSeconds").GetDouble());
        // Candidate at 0 %: unversioned requests go to the stable version although version 2 is newer.
        await RolloutFixture.EventuallyAsync("0 % rule applied", async () => (await platform.InferAsync(model)).ModelVersion == 1);
        Assert.All(await platform.InferManyAsync(model, 40), o => Assert.Equal(1, o.ModelVersion));

        var (status, _) = await platform.AdminAsync(HttpMethod.Patch, $"/api/models/{model}/rollout", new { candidatePercent = 30 });
        Assert.Equal(200, status);
        (status, _) = await platform.AdminAsync(HttpMethod.Post, $"/api/models/{model}/rollout/rollback");
        Assert.Equal(200, status);
        (status, var shown) = await platform.AdminAsync(HttpMethod.Get, $"/api/models/{model}/rollout");
        Assert.Equal(200, status);
        Assert.Equal("rolled_back", shown.GetProperty("state").GetString());
        Assert.Equal(0, shown.GetProperty("candidatePercent").GetDouble());
        var events = shown.GetProperty("events").EnumerateArray().ToArray();
        Assert.Equal(["created", "updated", "rolled_back"], events.Select(e => e.GetProperty("kind").GetString()));
        Assert.Equal([0.0, 30.0, 0.0], events.Select(e => e.GetProperty("toPercent").GetDouble()));
        Assert.All(events, e => Assert.Equal("admin", e.GetProperty("actor").GetString()));

        (status, _) = await platform.AdminAsync(HttpMethod.Delete, $"/api/models/{model}/rollout");
        Assert.Equal(204, status);
        await RolloutFixture.EventuallyAsync("rollout ended", async () => (await platform.InferAsync(model)).ModelVersion == 2);
        (status, shown) = await platform.AdminAsync(HttpMethod.Get, $"/api/models/{model}/rollout");
        Assert.Equal("ended", shown.GetProperty("state").GetString());
        (status, _) = await platform.AdminAsync(HttpMethod.Patch, $"/api/models/{model}/rollout", new { candidatePercent = 5 });
        Assert.Equal(404, status);
    }
}
