using System.Net;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Platform.Inference.Protocol;
using Platform.Inference.Protocol.Wire;
using Platform.Inference.Routing;
using Platform.WorkerDiscovery;

namespace Platform.OpenInference.Tests;

/// <summary>WorkerClient against real gRPC replicas (in-process HTTP/2-only Kestrel servers) that answer what a worker can answer.</summary>
public sealed class WorkerClientTests
{
    private const string InternalKey = "unit-test-internal-key-0123456789";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task EveryCallCarriesTheInternalCredential()
    {
        await using var replica = await Replica.StartAsync(_ => Answer("a"));
        using var client = Client(replica);

        await client.InferAsync("m", 1, new InferItem(), DateTimeOffset.UtcNow.AddSeconds(10), Ct);
        await client.IsLoadedOnAnyReplicaAsync("m", 1, Ct);
        await client.GetStatisticsAsync("m", 1, Ct);

        Assert.Equal(["Infer", "ModelStates", "ModelStatistics"], replica.Authorizations.Select(a => a.Method));
        Assert.All(replica.Authorizations, a => Assert.Equal($"Bearer {InternalKey}", a.Authorization));
    }

    [Fact]
    public async Task AnAnsweredCallMakesTheVersionReadyThoughItsReadinessWasReadWhileItLoaded()
    {
        // The replica's ModelStates says nothing is loaded (as while the version loads); its answer to a call says it is.
        await using var replica = await Replica.StartAsync(_ => Answer("a"));
        using var client = Client(new WorkerRoutingOptions { ReadinessCacheDuration = TimeSpan.FromHours(1) }, replica);

        Assert.False(await client.IsLoadedOnAnyReplicaAsync("m", 1, Ct));
        Assert.False(await client.IsLoadedOnAnyReplicaAsync("m", 2, Ct));
        var answered = await client.InferAsync("m", 1, new InferItem(), DateTimeOffset.UtcNow.AddSeconds(10), Ct);
        Assert.Null(answered.Error);

        Assert.True(await client.IsLoadedOnAnyReplicaAsync("m", 1, Ct));
        // Only the version that answered; and whether every replica has it is still what the replicas said.
        Assert.False(await client.IsLoadedOnAnyReplicaAsync("m", 2, Ct));
        Assert.False(await client.IsLoadedOnEveryReplicaAsync("m", 1, Ct));
        Assert.Equal(2, replica.Authorizations.Count(a => a.Method == "ModelStates"));
    }

    [Fact]
    public async Task AReplicaRefusingTheCredentialIsAvoidedAndAnotherServes()
    {
        // A rotation half done: one replica holds another key. The client must not get a 500 for the platform's own mismatch.
        await using var other = await Replica.StartAsync(_ => throw new RpcException(new Status(StatusCode.Unauthenticated, "internal credential wrong")));
        await using var good = await Replica.StartAsync(_ => Answer("good"));
        using var client = Client(other, good);

        for (var i = 0; i < 4; i++)
        {
            var result = await client.InferAsync("m", 1, new InferItem(), DateTimeOffset.UtcNow.AddSeconds(10), Ct);
            Assert.Equal("good", result.WorkerInstance);
        }

        await using var alone = await Replica.StartAsync(_ => throw new RpcException(new Status(StatusCode.Unauthenticated, "internal credential wrong")));
        using var lonely = Client(alone);
        var refused = await lonely.InferAsync("m", 1, new InferItem(), DateTimeOffset.UtcNow.AddSeconds(10), Ct);
        Assert.Equal(503, refused.Error!.Status);
        Assert.Contains("refused this service's internal credential", refused.Error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AClientWithoutTheCredentialIsRefusedAtConstruction()
    {
        var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var error = Assert.Throws<ArgumentException>(() => new WorkerClient(new FixedReplicas([]), Options.Create(new WorkerRoutingOptions()),
            TimeProvider.System, services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), NullLogger<WorkerClient>.Instance));
        Assert.Contains("InternalApiKey", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AReplicaThatDoesNotHaveTheVersionYetPassesTheRequestOnToOneThatHasIt()
    {
        // While a version rolls out, a replica whose registry view lags answers NOT_FOUND; the request must not fail for it.
        await using var behind = await Replica.StartAsync(_ => throw new RpcException(new Status(StatusCode.NotFound, "model 'm' version 1 is not active on this worker")));
        await using var ready = await Replica.StartAsync(_ => Answer("ready"));
        using var client = Client(behind, ready);

        for (var i = 0; i < 10; i++)
        {
            var result = await client.InferAsync("m", 1, new InferItem(), DateTimeOffset.UtcNow.AddSeconds(10), Ct);
            Assert.True(result.Result is not null, $"request {i}: {result.Error}");
            Assert.Equal("ready", result.WorkerInstance);
        }

        Assert.True(behind.Calls > 0, "the lagging replica was never tried, so the test proved nothing");
        Assert.Equal(10, ready.Calls);
    }

    [Fact]
    public async Task WhenNoReplicaCanServeTheCallerGetsTheMostTellingError()
    {
        // One replica's queue is full, the other does not have the version: "full, retry later" is what the client can act on.
        await using var full = await Replica.StartAsync(_ => ItemFailure(StatusCode.ResourceExhausted, "The queue of model 'm' version 1 is full (1 requests waiting); retry later.", 250));
        await using var behind = await Replica.StartAsync(_ => throw new RpcException(new Status(StatusCode.NotFound, "model 'm' version 1 is not active on this worker")));
        using var client = Client(full, behind);

        var result = await client.InferAsync("m", 1, new InferItem(), DateTimeOffset.UtcNow.AddSeconds(10), Ct);

        Assert.Null(result.Result);
        Assert.Equal(429, result.Error!.Status);
        Assert.Equal(250, result.Error.RetryAfterMs);
        Assert.Contains("is full", result.Error.Message, StringComparison.Ordinal);
        Assert.True(full.Calls > 0 && behind.Calls > 0, $"both replicas tried: full {full.Calls}, behind {behind.Calls}");
    }

    [Fact]
    public async Task ALoadingReplicasRetryDelayTravelsInItsTrailer()
    {
        await using var loading = await Replica.StartAsync(_ => throw new RpcException(new Status(StatusCode.Unavailable, "model 'm' version 1 is still loading"),
            new Metadata { { WorkerProtocol.RetryAfterTrailer, "1500" } }));
        using var client = Client(loading);

        var result = await client.InferAsync("m", 1, new InferItem(), DateTimeOffset.UtcNow.AddSeconds(10), Ct);

        Assert.Equal((503, 1500, "model 'm' version 1 is still loading"), (result.Error!.Status, result.Error.RetryAfterMs, result.Error.Message));
    }

    [Fact]
    public async Task AClientMistakeIsNotRetriedOnAnotherReplica()
    {
        await using var first = await Replica.StartAsync(_ => ItemFailure(StatusCode.InvalidArgument, "input 'x': shape [2] does not match [1,4]"));
        await using var second = await Replica.StartAsync(_ => ItemFailure(StatusCode.InvalidArgument, "input 'x': shape [2] does not match [1,4]"));
        using var client = Client(first, second);

        var result = await client.InferAsync("m", 1, new InferItem(), DateTimeOffset.UtcNow.AddSeconds(10), Ct);

        Assert.Equal((400, "input 'x': shape [2] does not match [1,4]"), (result.Error!.Status, result.Error.Message));
        Assert.Equal(1, result.Attempts);
        Assert.Equal(1, first.Calls + second.Calls);
    }

    [Fact]
    public async Task AnUnreachableReplicaIsSkippedAndCoolsDown()
    {
        var dead = await Replica.StartAsync(_ => Answer("dead"));
        var deadAddress = dead.Address;
        await dead.DisposeAsync();
        await using var alive = await Replica.StartAsync(_ => Answer("alive"));
        using var client = Client(new WorkerReplica("0", deadAddress, null), new WorkerReplica("1", alive.Address, null));

        for (var i = 0; i < 4; i++)
        {
            var result = await client.InferAsync("m", 1, new InferItem(), DateTimeOffset.UtcNow.AddSeconds(10), Ct);
            Assert.Equal("alive", result.WorkerInstance);
        }

        Assert.Contains(client.Replicas, r => r.Address == deadAddress && r.CoolingDown);
    }

    [Fact]
    public async Task TheRequestsDeadlineIsTheCallsDeadline()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var calls = 0;
        await using var slow = await Replica.StartAsync(async context =>
        {
            if (Interlocked.Increment(ref calls) == 1)
            {
                return await Answer("warm"); // the first call pays for connecting and JIT on both sides
            }

            started.TrySetResult();
            // The replica never answers: only the call's deadline can end the call.
            await Task.Delay(Timeout.Infinite, context.CancellationToken);
            return await Answer("late");
        });
        using var client = Client(slow);
        Assert.NotNull((await client.InferAsync("m", 1, new InferItem(), DateTimeOffset.UtcNow.AddSeconds(30), Ct)).Result);

        var result = await client.InferAsync("m", 1, new InferItem(), DateTimeOffset.UtcNow.AddMilliseconds(500), Ct);

        Assert.True(started.Task.IsCompleted, "the call never reached the replica");
        Assert.Equal(504, result.Error!.Status);
        Assert.Equal("the request's deadline passed before a model worker answered", result.Error.Message);
    }

    [Fact]
    public async Task ReplicasAreTheWorkersThatAnnouncedAGrpcAddress()
    {
        var directory = new FixedWorkers(
        [
            new WorkerEndpoint("a1", new Uri("http://127.0.0.1:5001"), new Uri("http://127.0.0.1:5002"), DateTimeOffset.UnixEpoch),
            new WorkerEndpoint("b2", new Uri("http://127.0.0.1:5003"), null, DateTimeOffset.UnixEpoch),
            new WorkerEndpoint("c3", new Uri("http://10.0.0.7:8080"), new Uri("http://10.0.0.7:8081"), DateTimeOffset.UnixEpoch),
        ]);

        var replicas = await new AnnouncedWorkerReplicaSource(directory).GetReplicasAsync(Ct);

        // A replica without a gRPC endpoint (an older worker) cannot take the hop.
        Assert.Equal(
            [new WorkerReplica("a1", new Uri("http://127.0.0.1:5002"), new Uri("http://127.0.0.1:5001")), new WorkerReplica("c3", new Uri("http://10.0.0.7:8081"), new Uri("http://10.0.0.7:8080"))],
            replicas);
    }

    [Fact]
    public async Task RequestsArrivingWhileACallIsInFlightShareTheNextCall()
    {
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var callSizes = new List<int>();
        await using var replica = await Replica.StartAsync(async (request, _) =>
        {
            lock (callSizes)
            {
                callSizes.Add(request.Items.Count);
            }

            if (request.Items[0].RequestId == "r0")
            {
                first.TrySetResult();
                await release.Task;
            }

            return Echo("w", request);
        });
        using var client = Client(replica);

        var calls = new List<Task<WorkerCallResult>> { client.InferAsync("m", 1, new InferItem { RequestId = "r0" }, DateTimeOffset.UtcNow.AddSeconds(30), Ct) };
        await first.Task.WaitAsync(Ct);
        // One call per version may be in flight: these nine queue behind r0's and leave together once it returns.
        calls.AddRange(Enumerable.Range(1, 9).Select(i => client.InferAsync("m", 1, new InferItem { RequestId = $"r{i}" }, DateTimeOffset.UtcNow.AddSeconds(30), Ct)));
        release.SetResult();
        var results = await Task.WhenAll(calls);

        Assert.Equal([1, 9], callSizes);
        for (var i = 0; i < results.Length; i++)
        {
            Assert.True(results[i].Result is not null, $"r{i}: {results[i].Error}");
            Assert.Equal($"r{i}", Assert.Single(results[i].Result!.Outputs).Name); // each request got its own answer back
        }
    }

    [Fact]
    public async Task InASharedCallEachRequestSucceedsFailsOrMovesOnByItself()
    {
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var fullRefusals = 0;
        Func<InferBatchRequest, ServerCallContext, Task<InferBatchResponse>> Worker(string instance) => async (request, _) =>
        {
            if (request.Items[0].RequestId == "gate")
            {
                first.TrySetResult();
                await release.Task;
            }

            var response = Echo(instance, request);
            for (var i = 0; i < request.Items.Count; i++)
            {
                var id = request.Items[i].RequestId;
                // "full" is refused by the first replica it reaches (its queue filled mid-call); "bad" is the client's mistake.
                if (id == "full" && Interlocked.Increment(ref fullRefusals) == 1)
                {
                    response.Results[i] = new InferItemResult { Error = new ItemError { Code = (int)StatusCode.ResourceExhausted, Message = "queue full", RetryAfterMs = 100 } };
                }
                else if (id == "bad")
                {
                    response.Results[i] = new InferItemResult { Error = new ItemError { Code = (int)StatusCode.InvalidArgument, Message = "input 'x': shape [1,3] does not match [-1,4]" } };
                }
            }

            return response;
        };
        await using var a = await Replica.StartAsync(Worker("a"));
        await using var b = await Replica.StartAsync(Worker("b"));
        using var client = Client(a, b);

        var gate = client.InferAsync("m", 1, new InferItem { RequestId = "gate" }, DateTimeOffset.UtcNow.AddSeconds(30), Ct);
        await first.Task.WaitAsync(Ct);
        var ok = client.InferAsync("m", 1, new InferItem { RequestId = "ok" }, DateTimeOffset.UtcNow.AddSeconds(30), Ct);
        var full = client.InferAsync("m", 1, new InferItem { RequestId = "full" }, DateTimeOffset.UtcNow.AddSeconds(30), Ct);
        var bad = client.InferAsync("m", 1, new InferItem { RequestId = "bad" }, DateTimeOffset.UtcNow.AddSeconds(30), Ct);
        release.SetResult();

        Assert.NotNull((await gate).Result);
        var okResult = await ok;
        Assert.Equal("ok", Assert.Single(okResult.Result!.Outputs).Name);
        var badResult = await bad;
        Assert.Equal(400, badResult.Error!.Status);
        Assert.Contains("input 'x'", badResult.Error.Message, StringComparison.Ordinal);
        var fullResult = await full;
        Assert.True(fullResult.Result is not null, $"the refused request did not move on: {fullResult.Error}");
        Assert.NotEqual(okResult.WorkerInstance, fullResult.WorkerInstance); // it went to the replica its call had not tried
        Assert.Equal(3, a.Calls + b.Calls); // the gate, the shared call of three, and "full" alone
    }

    private static InferBatchResponse Echo(string instance, InferBatchRequest request)
    {
        var response = new InferBatchResponse { WorkerInstance = instance, Version = 1 };
        foreach (var item in request.Items)
        {
            response.Results.Add(new InferItemResult { BatchSize = request.Items.Count, Outputs = { new Tensor { Name = item.RequestId } } });
        }

        return response;
    }

    private sealed class FixedWorkers(IReadOnlyList<WorkerEndpoint> workers) : IWorkerDirectory
    {
        public IReadOnlyList<WorkerEndpoint> Workers => workers;

        public Task WaitForFirstRefreshAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private static Task<InferBatchResponse> Answer(string instance) =>
        Task.FromResult(new InferBatchResponse { WorkerInstance = instance, Version = 1, Results = { new InferItemResult { BatchSize = 1 } } });

    private static Task<InferBatchResponse> ItemFailure(StatusCode code, string message, int retryAfterMs = 0) =>
        Task.FromResult(new InferBatchResponse
        {
            Version = 1,
            Results = { new InferItemResult { Error = new ItemError { Code = (int)code, Message = message, RetryAfterMs = retryAfterMs } } },
        });

    private static WorkerClient Client(params Replica[] replicas) => Client(1, replicas);

    private static WorkerClient Client(int coalesceCallsInFlight, params Replica[] replicas) =>
        Client(new WorkerRoutingOptions { CoalesceCallsInFlight = coalesceCallsInFlight }, replicas);

    private static WorkerClient Client(params WorkerReplica[] replicas) => Client(1, replicas);

    private static WorkerClient Client(int coalesceCallsInFlight, params WorkerReplica[] replicas) =>
        Client(new WorkerRoutingOptions { CoalesceCallsInFlight = coalesceCallsInFlight }, replicas);

    // The given options with the tests' retry settings and credential.
    private static WorkerClient Client(WorkerRoutingOptions options, params Replica[] replicas) =>
        Client(options, [.. replicas.Select((r, i) => new WorkerReplica(i.ToString(System.Globalization.CultureInfo.InvariantCulture), r.Address, null))]);

    private static WorkerClient Client(WorkerRoutingOptions options, params WorkerReplica[] replicas)
    {
        options.MaxAttempts = 4;
        options.RetryBackoff = TimeSpan.FromMilliseconds(10);
        options.InternalApiKey = InternalKey;
        var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        return new WorkerClient(
            new FixedReplicas(replicas),
            Options.Create(options),
            TimeProvider.System,
            services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(),
            NullLogger<WorkerClient>.Instance);
    }

    private sealed class FixedReplicas(IReadOnlyList<WorkerReplica> replicas) : IWorkerReplicaSource
    {
        public ValueTask<IReadOnlyList<WorkerReplica>> GetReplicasAsync(CancellationToken cancellationToken) => ValueTask.FromResult(replicas);
    }

    /// <summary>An HTTP/2-only server hosting the worker's gRPC service with a scripted Infer.</summary>
    private sealed class Replica : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly Service _service;

        private Replica(WebApplication app, Service service)
        {
            _app = app;
            _service = service;
        }

        public Uri Address { get; private set; } = null!;

        public int Calls => _service.Calls;

        public IReadOnlyList<(string Method, string? Authorization)> Authorizations => [.. _service.Authorizations];

        public static Task<Replica> StartAsync(Func<ServerCallContext, Task<InferBatchResponse>> infer) =>
            StartAsync((_, context) => infer(context));

        public static async Task<Replica> StartAsync(Func<InferBatchRequest, ServerCallContext, Task<InferBatchResponse>> infer)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http2));
            var service = new Service(infer);
            builder.Services.AddGrpc();
            builder.Services.AddSingleton(service);
            var app = builder.Build();
            app.MapGrpcService<Service>();
            await app.StartAsync(Ct);
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
            return new Replica(app, service) { Address = new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal) + "/") };
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        private sealed class Service(Func<InferBatchRequest, ServerCallContext, Task<InferBatchResponse>> infer) : ModelWorker.ModelWorkerBase
        {
            private int _calls;

            public int Calls => Volatile.Read(ref _calls);

            public System.Collections.Concurrent.ConcurrentQueue<(string Method, string? Authorization)> Authorizations { get; } = new();

            public override Task<InferBatchResponse> Infer(InferBatchRequest request, ServerCallContext context)
            {
                Interlocked.Increment(ref _calls);
                Authorizations.Enqueue(("Infer", context.RequestHeaders.GetValue("authorization")));
                return infer(request, context);
            }

            public override Task<ModelStatesResponse> ModelStates(ModelStatesRequest request, ServerCallContext context)
            {
                Authorizations.Enqueue(("ModelStates", context.RequestHeaders.GetValue("authorization")));
                return Task.FromResult(new ModelStatesResponse());
            }

            public override Task<ModelStatisticsResponse> ModelStatistics(ModelStatisticsRequest request, ServerCallContext context)
            {
                Authorizations.Enqueue(("ModelStatistics", context.RequestHeaders.GetValue("authorization")));
                return Task.FromResult(new ModelStatisticsResponse());
            }
        }
    }
}
