using System.Runtime.InteropServices;
using System.Text;
using Platform.Inference.OpenInference;
using Platform.Inference.Protocol;
using Platform.OnnxModels;
using Platform.TestSupport;

namespace Platform.Serving.Tests;

/// <summary>
/// Kills (or freezes) a worker replica and restarts (or resumes) it afterwards; shares a collection with the statistics tests, whose counts a
/// restarted worker would lose.
/// </summary>
[Collection(WorkerRestarts)]
public sealed class WorkerFailureTests(ServingFixture fixture)
{
    /// <summary>Tests that restart workers, or that a worker restart would disturb, run one after another.</summary>
    public const string WorkerRestarts = "worker-restarts";

    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task KillingOneOfTwoWorkersDuringABurstFailsNoRequest()
    {
        var input = await DeployAsync("failover", 31);

        // Replica 0: in run mode InferenceApi packs requests onto the first replica, so this is the one serving the burst.
        var (failures, completed, _) = await BurstAsync("failover", input, 40, null,
            () => fixture.App.StopAsync("model-worker", replica: 0, Ct),
            () => fixture.App.StartAsync("model-worker", replica: 0, Ct));

        Assert.Equal(16 * 40, completed);
        Assert.True(failures.Count == 0, $"{failures.Count} failed: {string.Join("; ", failures.Distinct().Take(5))}");
        await fixture.App.WaitForHealthyAsync("model-worker", cancellationToken: Ct);
    }

    [Fact]
    public async Task ASigtermedWorkerLeavesTheDirectoryAtOnceAndFailsNoRequest()
    {
        var input = await DeployAsync("drain", 33);
        await using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(await fixture.App.GetConnectionStringAsync("redis", Ct));
        var endpoints = redis.GetDatabase();
        const string Announcements = "platform:workers:endpoints";
        Assert.Equal(2, await endpoints.HashLengthAsync(Announcements));

        // SIGTERM, as Kubernetes stops a pod: the replica withdraws its announcement as its drain starts (InferenceApi
        // stops choosing it within its next refresh) and keeps answering what it was given until the drain ends.
        var (failures, completed, _) = await BurstAsync("drain", input, 40, null,
            async () =>
            {
                using var victim = fixture.App.CreateReplicaHttpClient("model-worker", 0);
                await fixture.App.TerminateAsync("model-worker", replica: 0, Ct);
                await Waits.UntilAsync(async () => await endpoints.HashLengthAsync(Announcements) == 1, TimeSpan.FromSeconds(2),
                    "the SIGTERMed worker's announcement withdrawn", Ct);
                using var health = await victim.GetAsync("/health", Ct);
                Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, health.StatusCode);
            },
            async () =>
            {
                await fixture.App.WaitForExitAsync("model-worker", replica: 0, Ct);
                await fixture.App.StartAsync("model-worker", replica: 0, Ct);
            });

        Assert.Equal(16 * 40, completed);
        Assert.True(failures.Count == 0, $"{failures.Count} failed: {string.Join("; ", failures.Distinct().Take(5))}");
        await fixture.App.WaitForHealthyAsync("model-worker", cancellationToken: Ct);
        await Waits.UntilAsync(async () => await endpoints.HashLengthAsync(Announcements) == 2, TimeSpan.FromSeconds(30), "the restarted worker announced", Ct);
    }

    [Fact]
    public async Task AHungWorkerHoldsItsCallsForSecondsNotUntilTheirDeadline()
    {
        var input = await DeployAsync("hung", 32);

        // Replica 0 serves the burst; frozen, it keeps its connections open and answers nothing. The unanswered HTTP/2
        // ping closes them and the calls move to replica 1. A call stuck until its 20 s deadline would be a 504.
        var (failures, completed, slowest) = await BurstAsync("hung", input, 30, new InferRequestParameters { TimeoutMicroseconds = 20_000_000 },
            () => fixture.App.PauseAsync("model-worker", replica: 0, Ct),
            () => fixture.App.ResumeAsync("model-worker", replica: 0, Ct));

        Assert.Equal(16 * 30, completed);
        Assert.True(failures.Count == 0, $"{failures.Count} failed: {string.Join("; ", failures.Distinct().Take(5))}");
        Assert.True(slowest < TimeSpan.FromSeconds(15), $"the slowest request took {slowest.TotalSeconds:0.0} s");
        await fixture.App.WaitForHealthyAsync("model-worker", cancellationToken: Ct);
    }

    private async Task<InferTensor> DeployAsync(string name, ulong seed)
    {
        var model = ModelCatalog.Generate("mlp", new ModelRequest { Seed = seed });
        var version = await fixture.Client.UploadAsync(name, model.Bytes, Ct);
        await fixture.Client.ActivateAsync(name, version, Ct);
        var values = Enumerable.Range(0, 16).Select(i => i / 16f).ToArray();
        var input = new InferTensor("input", DataType.Fp32, [1, 16], MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
        await fixture.Client.WaitServedAsync(name, version, input, Ct);
        return input;
    }

    // Sixteen clients send `requests` inferences each; `disrupt` runs once the first client reaches its tenth, and
    // `restore` after the burst whatever happened.
    private async Task<(List<string> Failures, int Completed, TimeSpan Slowest)> BurstAsync(
        string model, InferTensor input, int requests, InferRequestParameters? parameters, Func<Task> disrupt, Func<Task> restore)
    {
        var failures = new List<string>();
        var completed = 0;
        var slowest = TimeSpan.Zero;
        var disruptAt = new TaskCompletionSource();
        var burst = Enumerable.Range(0, 16).Select(async client =>
        {
            for (var i = 0; i < requests; i++)
            {
                if (client == 0 && i == 10)
                {
                    disruptAt.TrySetResult();
                }

                var started = System.Diagnostics.Stopwatch.StartNew();
                var (status, body, _) = await fixture.Client.PostAsync($"/v2/models/{model}/infer", [input], TensorEncoding.Binary, parameters: parameters, ct: Ct);
                lock (failures)
                {
                    completed++;
                    slowest = started.Elapsed > slowest ? started.Elapsed : slowest;
                    if (status != 200)
                    {
                        failures.Add($"{status} {Encoding.UTF8.GetString(body)}");
                    }
                }
            }
        }).ToArray();

        await disruptAt.Task.WaitAsync(TimeSpan.FromSeconds(60), Ct);
        try
        {
            await disrupt();
            await Task.WhenAll(burst);
        }
        finally
        {
            await restore();
        }

        return (failures, completed, slowest);
    }
}
