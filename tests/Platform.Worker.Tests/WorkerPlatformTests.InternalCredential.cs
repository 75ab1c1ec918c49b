using System.Net;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using Grpc.Core;
using Grpc.Net.Client;
using Platform.TestSupport;
using WireDataType = Platform.Inference.Protocol.Wire.DataType;

namespace Platform.Worker.Tests;

/// <summary>The internal hop is authenticated: only holders of the AppHost's <c>internal-api-key</c> get inference out of a worker.</summary>
public sealed partial class WorkerPlatformTests
{
    [Theory]
    [InlineData(null)]
    [InlineData("not-the-internal-key-0123456789abcdef")]
    public async Task ADirectGrpcCallWithoutTheInternalCredentialIsUnauthenticated(string? wrongKey)
    {
        var (name, version) = await SharedModelAsync();
        var good = MemoryMarshal.AsBytes(Floats(16, 1).AsSpan()).ToArray();
        for (var replica = 0; replica < 2; replica++)
        {
            using var channel = wrongKey is null ? platform.CreateWorkerChannel(replica, credential: false) : Channel(replica, wrongKey);
            var stranger = new Platform.Inference.Protocol.Wire.ModelWorker.ModelWorkerClient(channel);
            var error = await Assert.ThrowsAsync<RpcException>(async () =>
                await stranger.InferAsync(Batch(name, version, Item(("input", WireDataType.Fp32, [1, 16], good))), cancellationToken: Ct));
            Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
            Assert.Contains("internal-api-key", error.Status.Detail, StringComparison.Ordinal);
            // Nothing else of the service answers a stranger either.
            var states = await Assert.ThrowsAsync<RpcException>(async () =>
                await stranger.ModelStatesAsync(new Platform.Inference.Protocol.Wire.ModelStatesRequest(), cancellationToken: Ct));
            Assert.Equal(StatusCode.Unauthenticated, states.StatusCode);

            // The same call with the credential is served: the refusal was the credential's, not the request's.
            using var trusted = platform.CreateWorkerChannel(replica);
            var response = await new Platform.Inference.Protocol.Wire.ModelWorker.ModelWorkerClient(trusted)
                .InferAsync(Batch(name, version, Item(("input", WireDataType.Fp32, [1, 16], good))), cancellationToken: Ct);
            Assert.Null(Assert.Single(response.Results).Error);
        }
    }

    [Fact]
    public async Task TheWorkersHttpListingNeedsTheCredentialWhileProbesAndScrapesStayOpen()
    {
        for (var replica = 0; replica < 2; replica++)
        {
            using var anonymous = platform.App.CreateReplicaHttpClient("model-worker", replica);
            using (var refused = await anonymous.GetAsync("/v1/models", Ct))
            {
                Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
                Assert.Contains("internal-api-key", await refused.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
                Assert.Equal("Bearer", refused.Headers.WwwAuthenticate.Single().Scheme);
            }

            using (var wrong = new HttpRequestMessage(HttpMethod.Get, "/v1/models"))
            {
                wrong.Headers.Authorization = new AuthenticationHeaderValue("Bearer", platform.InternalKey + "x");
                using var refused = await anonymous.SendAsync(wrong, Ct);
                Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
            }

            // Kubernetes probes and Prometheus hold no credential.
            using (var health = await anonymous.GetAsync("/health", Ct))
            {
                Assert.NotEqual(HttpStatusCode.Unauthorized, health.StatusCode);
            }

            using var trusted = await platform.App.CreateWorkerHttpClientAsync(replica, Ct);
            using var listing = await trusted.GetAsync("/v1/models", Ct);
            Assert.Equal(HttpStatusCode.OK, listing.StatusCode);

            // Each refusal is counted by transport and reason (this test and the gRPC ones above add to the same counters).
            var metrics = await anonymous.GetStringAsync("/metrics", Ct);
            Assert.True(PrometheusText.Value(metrics, "platform_worker_auth_refusals_total", ("transport", "http"), ("reason", "missing")) >= 1, metrics);
            Assert.True(PrometheusText.Value(metrics, "platform_worker_auth_refusals_total", ("transport", "http"), ("reason", "wrong")) >= 1, metrics);
        }
    }

    [Fact]
    public async Task TheInternalCredentialAppearsInNoServicesLogs()
    {
        // Make every service use or refuse the credential at least once, then read all their console output.
        await ADirectGrpcCallWithoutTheInternalCredentialIsUnauthenticated("wrong-key-for-the-log-check-0123456789");
        await TheWorkersHttpListingNeedsTheCredentialWhileProbesAndScrapesStayOpen();

        foreach (var service in new[] { "model-worker", "inference-api", "context-enrichment", "admin-api" })
        {
            var logs = platform.App.Logs(service, lines: 500);
            Assert.DoesNotContain(platform.InternalKey, logs, StringComparison.Ordinal);
        }

        var worker = platform.App.Logs("model-worker", lines: 500);
        Assert.Contains("internal credential missing", worker, StringComparison.Ordinal);
        Assert.Contains("internal credential wrong", worker, StringComparison.Ordinal);
    }

    private GrpcChannel Channel(int replica, string key) =>
        GrpcChannel.ForAddress(platform.App.ReplicaAddress("model-worker", replica, "grpc"), new GrpcChannelOptions
        {
            Credentials = ChannelCredentials.Create(ChannelCredentials.Insecure, CallCredentials.FromInterceptor((_, metadata) =>
            {
                metadata.Add("authorization", $"Bearer {key}");
                return Task.CompletedTask;
            })),
            UnsafeUseInsecureChannelCallCredentials = true,
        });
}
