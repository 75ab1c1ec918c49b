using System.Runtime.InteropServices;
using System.Text;
using Platform.Inference.OpenInference;
using Platform.Inference.Protocol;
using Platform.OnnxModels;

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
        var client = fixture.Client;
        var model = ModelCatalog.Generate("mlp", new ModelRequest { Seed = 31 });
        var version = await client.UploadAsync("failover", model.Bytes, Ct);
        await client.ActivateAsync("failover", version, Ct);
        var values = Enumerable.Range(0, 16).Select(i => i / 16f).ToArray();
        var input = new InferTensor("input", DataType.Fp32, [1, 16], MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
        await client.WaitServedAsync("failover", version, input, Ct);

        var failures = new List<string>();
        var completed = 0;
        var killAt = new TaskCompletionSource();
        var burst = Enumerable.Range(0, 16).Select(async worker =>
        {
            for (var i = 0; i < 40; i++)
            {
                if (worker == 0 && i == 10)
                {
                    killAt.TrySetResult();
                }

                var (status, body, _) = await client.PostAsync("/v2/models/failover/infer", [input], TensorEncoding.Binary, ct: Ct);
                Interlocked.Increment(ref completed);
                if (status != 200)
                {
                    lock (failures)
                    {
                        failures.Add($"{status} {Encoding.UTF8.GetString(body)}");
                    }
                }
            }
        }).ToArray();

        await killAt.Task.WaitAsync(TimeSpan.FromSeconds(60), Ct);
        // Replica 0: in run mode InferenceApi packs requests onto the first replica, so this is the one serving the burst.
        try
        {
            await fixture.App.StopAsync("model-worker", replica: 0, Ct);
            await Task.WhenAll(burst);
        }
        finally
        {
            await fixture.App.StartAsync("model-worker", replica: 0, Ct);
        }

        Assert.Equal(16 * 40, completed);
        Assert.True(failures.Count == 0, $"{failures.Count} failed: {string.Join("; ", failures.Distinct().Take(5))}");
        await fixture.App.WaitForHealthyAsync("model-worker", cancellationToken: Ct);
    }

    [Fact]
    public async Task AHungWorkerHoldsItsCallsForSecondsNotUntilTheirDeadline()
    {
        var client = fixture.Client;
        var model = ModelCatalog.Generate("mlp", new ModelRequest { Seed = 32 });
        var version = await client.UploadAsync("hung", model.Bytes, Ct);
        await client.ActivateAsync("hung", version, Ct);
        var values = Enumerable.Range(0, 16).Select(i => i / 32f).ToArray();
        var input = new InferTensor("input", DataType.Fp32, [1, 16], MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
        await client.WaitServedAsync("hung", version, input, Ct);
        // A call stuck on the frozen replica until this deadline would be a 504: the test's failure.
        var parameters = new InferRequestParameters { TimeoutMicroseconds = 20_000_000 };

        var failures = new List<string>();
        var slowest = TimeSpan.Zero;
        var pauseAt = new TaskCompletionSource();
        var burst = Enumerable.Range(0, 16).Select(async worker =>
        {
            for (var i = 0; i < 30; i++)
            {
                if (worker == 0 && i == 10)
                {
                    pauseAt.TrySetResult();
                }

                var started = System.Diagnostics.Stopwatch.StartNew();
                var (status, body, _) = await client.PostAsync("/v2/models/hung/infer", [input], TensorEncoding.Binary, parameters: parameters, ct: Ct);
                lock (failures)
                {
                    slowest = started.Elapsed > slowest ? started.Elapsed : slowest;
                    if (status != 200)
                    {
                        failures.Add($"{status} {Encoding.UTF8.GetString(body)}");
                    }
                }
            }
        }).ToArray();

        await pauseAt.Task.WaitAsync(TimeSpan.FromSeconds(60), Ct);
        // Replica 0 serves the burst (run mode packs requests onto the first replica); frozen, it keeps its connections
        // open and answers nothing. The unanswered HTTP/2 ping closes them and the calls move to replica 1.
        try
        {
            await fixture.App.PauseAsync("model-worker", replica: 0, Ct);
            await Task.WhenAll(burst);
        }
        finally
        {
            await fixture.App.ResumeAsync("model-worker", replica: 0, Ct);
        }

        Assert.True(failures.Count == 0, $"{failures.Count} failed: {string.Join("; ", failures.Distinct().Take(5))}");
        Assert.True(slowest < TimeSpan.FromSeconds(15), $"the slowest request took {slowest.TotalSeconds:0.0} s");
        await fixture.App.WaitForHealthyAsync("model-worker", cancellationToken: Ct);
    }
}
