using System.Collections.Concurrent;
using System.Net;
using Grpc.Net.Client;
using Platform.Inference.OpenInference.Grpc;
using Platform.TestSupport;

namespace Platform.Governance.Tests;

/// <summary>A replica told to stop (SIGTERM, as Kubernetes does in a rollout) drains instead of dropping its clients.</summary>
public sealed class ShutdownDrainTests(GovernanceFixture fixture)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ASigtermedReplicaAnswersEveryRequestItTakesWhileDrainingAndRecordsEachOnce()
    {
        var tenant = await PlatformTenants.CreateAsync(fixture.Admin, $"drain-{Guid.NewGuid():N}"[..20], cancellationToken: Ct);
        using var victim = fixture.Inference(0).WithApiKey(tenant.Key);
        using var survivor = fixture.Inference(1).WithApiKey(tenant.Key);
        await GovernanceFixture.WaitServedAsync(victim, GovernanceFixture.Model, Ct);
        await GovernanceFixture.WaitServedAsync(survivor, GovernanceFixture.Model, Ct);
        var warmUp = await fixture.SettledUsageAsync(tenant.Id, 2, Ct);
        using var channel = GrpcChannel.ForAddress(fixture.App.ReplicaAddress("inference-api", 0, "grpc"));
        var grpc = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
        Assert.True((await grpc.ServerReadyAsync(new ServerReadyRequest(), cancellationToken: Ct)).Ready);

        // Four clients behind a balancer that sends them to replica 0 until it has seen its readiness down and a little
        // longer (endpoints take a moment to propagate), then to replica 1: what a rollout looks like to clients.
        var answered = new ConcurrentBag<string>();
        var closing = new ConcurrentBag<string>();
        var failures = new ConcurrentBag<string>();
        var signalled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var outOfRotation = new CancellationTokenSource();
        using var done = new CancellationTokenSource();
        var burst = Enumerable.Range(0, 4).Select(client => Task.Run(async () =>
        {
            for (var i = 0; !done.IsCancellationRequested; i++)
            {
                var id = $"drain-{client}-{i}";
                var onVictim = !outOfRotation.IsCancellationRequested;
                try
                {
                    using var response = await (onVictim ? victim : survivor).PostAsync(
                        $"/v2/models/{GovernanceFixture.Model}/infer", GovernanceFixture.InferBody(id, i), Ct);
                    if (response.StatusCode != HttpStatusCode.OK)
                    {
                        failures.Add($"{id}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(Ct)}");
                        continue;
                    }

                    answered.Add(id);
                    if (onVictim && signalled.Task.IsCompleted && response.Headers.ConnectionClose == true)
                    {
                        closing.Add(id);
                    }

                    if (answered.Count >= 40)
                    {
                        signal.TrySetResult();
                    }
                }
                catch (HttpRequestException ex)
                {
                    failures.Add($"{id} to replica {(onVictim ? 0 : 1)}: {ex.Message} ({ex.InnerException?.Message})");
                }
            }
        })).ToArray();

        var terminated = false;
        try
        {
            await signal.Task.WaitAsync(TimeSpan.FromSeconds(60), Ct);
            await fixture.App.TerminateAsync("inference-api", replica: 0, Ct);
            terminated = true;
            signalled.SetResult();
            using (var probe = fixture.Inference(0))
            {
                await Waits.UntilAsync(
                    async () =>
                    {
                        using var health = await probe.GetAsync("/health", Ct);
                        return health.StatusCode == HttpStatusCode.ServiceUnavailable;
                    },
                    TimeSpan.FromSeconds(5), "readiness down on the draining replica", Ct);
            }

            // The protocol's own readiness says so too, to a gRPC client on its open connection.
            Assert.False((await grpc.ServerReadyAsync(new ServerReadyRequest(), cancellationToken: Ct)).Ready);

            // The balancer's lag (endpoints propagating): replica 0 keeps getting requests and answers them, each on a
            // connection it then closes, until the balancer has moved everyone away.
            await Waits.UntilAsync(() => closing.Count >= 8, TimeSpan.FromSeconds(5), "requests answered by the draining replica", Ct);
            await outOfRotation.CancelAsync();
            await fixture.App.WaitForExitAsync("inference-api", replica: 0, Ct);
            await done.CancelAsync();
            await Task.WhenAll(burst).WaitAsync(TimeSpan.FromSeconds(60), Ct);

            Assert.Empty(failures);
            var recorded = await fixture.SettledRecordsPerRequestAsync(tenant.Id, warmUp.Count + answered.Count, Ct);
            // A drained stop leaves nothing half done: each answered request has one record and nothing else has any.
            Assert.All(answered, id => Assert.Equal(1, recorded.GetValueOrDefault(id)));
            Assert.Equal(answered.Count, recorded.Count(r => r.Key.StartsWith("drain-", StringComparison.Ordinal)));
        }
        finally
        {
            await done.CancelAsync();
            if (terminated)
            {
                await fixture.App.WaitForExitAsync("inference-api", replica: 0, Ct);
                await fixture.App.StartAsync("inference-api", replica: 0, Ct);
            }
        }
    }
}
