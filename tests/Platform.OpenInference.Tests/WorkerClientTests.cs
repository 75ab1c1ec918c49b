using System.Net;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Platform.Inference.Protocol.Wire;
using Platform.Inference.Routing;
using Platform.WorkerDiscovery;

namespace Platform.OpenInference.Tests;

/// <summary>WorkerClient against real h2c replicas (in-process Kestrel servers) that answer what a worker can answer.</summary>
public sealed class WorkerClientTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AReplicaThatDoesNotHaveTheVersionYetPassesTheRequestOnToOneThatHasIt()
    {
        // While a version rolls out, a replica whose registry view lags answers 404; the request must not fail for it.
        await using var behind = await Replica.StartAsync(404, "model 'm' version 1 is not active on this worker");
        await using var ready = await Replica.StartAsync(200, "ready");
        using var client = Client(behind, ready);

        for (var i = 0; i < 10; i++)
        {
            var result = await client.InferAsync(Request(), DateTimeOffset.UtcNow.AddSeconds(10), Ct);
            Assert.True(result.Response is not null, $"request {i}: {result.Error}");
            Assert.Equal("ready", result.Response!.WorkerInstance);
        }

        Assert.True(behind.Calls > 0, "the lagging replica was never tried, so the test proved nothing");
        Assert.Equal(10, ready.Calls);
    }

    [Fact]
    public async Task WhenNoReplicaCanServeTheCallerGetsTheMostTellingError()
    {
        // One replica is full, the other does not have the version: "full, retry later" is what the client can act on.
        await using var full = await Replica.StartAsync(429, "The queue of model 'm' version 1 is full (1 requests waiting); retry later.");
        await using var behind = await Replica.StartAsync(404, "model 'm' version 1 is not active on this worker");
        using var client = Client(full, behind);

        var result = await client.InferAsync(Request(), DateTimeOffset.UtcNow.AddSeconds(10), Ct);

        Assert.Null(result.Response);
        Assert.Equal(429, result.Error!.Code);
        Assert.Contains("is full", result.Error.Message, StringComparison.Ordinal);
        Assert.True(full.Calls > 0 && behind.Calls > 0, $"both replicas tried: full {full.Calls}, behind {behind.Calls}");
    }

    [Fact]
    public async Task AClientMistakeIsNotRetriedOnAnotherReplica()
    {
        await using var first = await Replica.StartAsync(400, "input 'x': shape [2] does not match [1,4]");
        await using var second = await Replica.StartAsync(400, "input 'x': shape [2] does not match [1,4]");
        using var client = Client(first, second);

        var result = await client.InferAsync(Request(), DateTimeOffset.UtcNow.AddSeconds(10), Ct);

        Assert.Equal(400, result.Error!.Code);
        Assert.Equal(1, result.Attempts);
        Assert.Equal(1, first.Calls + second.Calls);
    }

    private static WorkerInferRequest Request() => new() { Model = "m", Version = 1 };

    private static WorkerClient Client(params Replica[] replicas)
    {
        var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        return new WorkerClient(
            new FixedWorkers([.. replicas.Select((r, i) => new WorkerEndpoint($"replica-{i}", r.Address, null, DateTimeOffset.UnixEpoch))]),
            Options.Create(new WorkerRoutingOptions { MaxAttempts = 4, RetryBackoff = TimeSpan.FromMilliseconds(10) }),
            TimeProvider.System,
            services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(),
            NullLogger<WorkerClient>.Instance);
    }

    /// <summary>A fixed set of announced workers: what the Redis-backed directory would hold.</summary>
    private sealed class FixedWorkers(IReadOnlyList<WorkerEndpoint> workers) : IWorkerDirectory
    {
        public IReadOnlyList<WorkerEndpoint> Workers => workers;

        public Task WaitForFirstRefreshAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>
    /// An HTTP/2-only (prior knowledge) server answering <c>POST /v1/infer</c> with a fixed status, as a worker does. Being
    /// HTTP/2-only it also checks the hop's protocol: Kestrel answers an HTTP/1.1 request here with a bare 400.
    /// </summary>
    private sealed class Replica : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private int _calls;

        private Replica(WebApplication app) => _app = app;

        public Uri Address { get; private set; } = null!;

        public int Calls => Volatile.Read(ref _calls);

        public static async Task<Replica> StartAsync(int status, string message)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http2));
            var app = builder.Build();
            var replica = new Replica(app);
            app.MapPost("/v1/infer", async (HttpContext context) =>
            {
                Interlocked.Increment(ref replica._calls);
                IMessage answer = status == 200
                    ? new WorkerInferResponse { WorkerInstance = message, BatchSize = 1 }
                    : new WorkerError { Code = status, Message = message, RetryAfterMs = status is 429 or 503 ? 1000 : 0 };
                context.Response.StatusCode = status;
                context.Response.ContentType = WorkerClient.ContentType;
                await context.Response.Body.WriteAsync(answer.ToByteArray(), context.RequestAborted);
            });
            await app.StartAsync(Ct);
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
            replica.Address = new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal) + "/");
            return replica;
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
