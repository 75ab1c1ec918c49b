using System.Net.Http.Headers;
using Platform.OnnxModels;

namespace Platform.Rollouts.Tests;

public sealed class WarmupTests(RolloutFixture platform, ITestOutputHelper output)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task CandidateGetsNoTrafficUntilEveryWorkerHasLoadedAndWarmedItUp()
    {
        var model = $"warmup-{Guid.NewGuid():N}"[..32];
        await UploadAsync(model, seed: 1, activate: true);
        await RolloutFixture.EventuallyAsync("version 1 served", async () => (await platform.InferAsync(model, 1)).Status == 200);
        await UploadAsync(model, seed: 2, activate: false);
        await platform.StartRolloutAsync(model, new { stableVersion = 1, candidateVersion = 2, candidatePercent = 100 });
        await RolloutFixture.EventuallyAsync("rule applied in InferenceApi", () =>
            Task.FromResult(platform.App.Logs("inference-api", 5000).Contains($"Rollout of {model} applied", StringComparison.Ordinal)));

        // Traffic runs while version 2 is activated, loaded and warmed up on every worker.
        using var traffic = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var driving = platform.DriveTrafficAsync(model, 4, traffic.Token);
        using (var activated = await platform.Admin.PostAsync($"/api/models/{model}/versions/2/activate", null, Ct))
        {
            Assert.True(activated.IsSuccessStatusCode, await activated.Content.ReadAsStringAsync(Ct));
        }

        var activatedAt = DateTimeOffset.UtcNow;

        await RolloutFixture.EventuallyAsync("candidate answering", async () => (await platform.InferAsync(model, cancellationToken: Ct)).ModelVersion == 2);
        await traffic.CancelAsync();
        var sent = (await driving).OrderBy(o => o.Sent).ToList();
        var afterActivation = sent.Where(o => o.Sent > activatedAt).ToList();
        output.WriteLine($"{sent.Count} requests, {afterActivation.Count} sent after the activation: {afterActivation.Count(o => o.Outcome.ModelVersion == 1)} answered by "
            + $"version 1 (candidate loading), {afterActivation.Count(o => o.Outcome.ModelVersion == 2)} by version 2");
        Assert.All(sent, o => Assert.Equal(200, o.Outcome.Status));
        // Traffic did run while the candidate was being loaded (and was answered by the stable version).
        Assert.Contains(afterActivation, o => o.Outcome.ModelVersion == 1);

        // No request of the candidate reached a worker that had not loaded it (the router would have logged its 503).
        Assert.DoesNotContain($"Model {model} version 2: worker error", platform.App.Logs("inference-api", 20000), StringComparison.Ordinal);
        // Every worker replica ran the configured warm-up on version 2. A worker logs it before it reports the version
        // ready, but its log lines reach the test through DCP's log stream, which may trail the replica's status by seconds.
        var workers = platform.App.Instances("model-worker").Count;
        await RolloutFixture.EventuallyAsync($"the warm-up line of version 2 from all {workers} workers",
            () => Task.FromResult(WarmedUpReplicas(model) == workers), TimeSpan.FromSeconds(30));
        Assert.Equal(workers, WarmedUpReplicas(model));
    }

    private int WarmedUpReplicas(string model) => platform.App.Logs("model-worker", 20000).Split('\n')
        .Where(l => l.Contains($"Warmed up {model} version 2: {RolloutFixture.WarmUpRuns} runs", StringComparison.Ordinal))
        .Select(l => l.Split(" | ")[0]).Distinct().Count();

    private async Task UploadAsync(string model, ulong seed, bool activate)
    {
        // Wide layers make the suite's warm-up (WarmUpRuns runs) take seconds, long enough for traffic to run meanwhile.
        using var content = new ByteArrayContent(ModelCatalog.Generate("mlp", new ModelRequest { Seed = seed, Features = RolloutFixture.Features, Hidden = [1024, 1024] }).Bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var response = await platform.Admin.PostAsync($"/api/models/{model}/versions?activate={(activate ? "true" : "false")}", content, Ct);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync(Ct));
    }
}
