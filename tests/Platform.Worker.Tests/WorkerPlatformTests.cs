using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Platform.Inference.Protocol;
using Platform.Inference.Protocol.Wire;
using Platform.OnnxModels;
using Platform.OnnxRuntime;
using WireDataType = Platform.Inference.Protocol.Wire.DataType;

namespace Platform.Worker.Tests;

/// <summary>ModelWorker in the running platform: models come from the registry, requests arrive over the gRPC hop.</summary>
public sealed partial class WorkerPlatformTests(PlatformFixture platform) : IClassFixture<PlatformFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task InferenceOverGrpcEqualsInProcessOnnxRuntimeBitForBit()
    {
        var mlp = MlpClassifier.Create(new MlpClassifierOptions { InputFeatures = 16, HiddenSizes = [64, 32], Classes = 5, Seed = 11 });
        var bytes = mlp.ToModel().Bytes;
        var name = Unique("bitwise");
        var version = await platform.UploadActiveAsync(name, bytes, Ct);
        await platform.WaitUntilReadyEverywhereAsync(name, version, TimeSpan.FromSeconds(60), Ct);

        var input = Floats(3 * 16, seed: 5);
        // In-process ONNX Runtime configured as the workers configure their sessions: the same provider and weights shared
        // under the model's name (shared initializers can change the last bit of a result, so like is compared with like).
        var cuda = string.Equals(Environment.GetEnvironmentVariable("PLATFORM_TEST_EXECUTION_PROVIDER"), "cuda", StringComparison.OrdinalIgnoreCase);
        using var ort = new OrtEnvironment();
        using var session = ort.CreateSession(bytes, new InferenceSessionOptions
        {
            ExecutionProvider = cuda ? ExecutionProviderPreference.Cuda : ExecutionProviderPreference.Cpu,
            SharedWeightsKey = name,
        });
        using var expected = session.Run([new NamedTensor("input", TensorData.From(input, 3, 16))], cancellationToken: Ct);

        for (var replica = 0; replica < 2; replica++)
        {
            using var channel = platform.CreateWorkerChannel(replica);
            var response = await new Platform.Inference.Protocol.Wire.ModelWorker.ModelWorkerClient(channel).InferAsync(
                Batch(name, version, Item(("input", WireDataType.Fp32, [3, 16], MemoryMarshal.AsBytes(input.AsSpan()).ToArray()))), cancellationToken: Ct);
            Assert.Equal(platform.App.InstanceId("model-worker", replica), $"model-worker-{response.WorkerInstance}");
            Assert.Equal(version, response.Version);
            var result = Assert.Single(response.Results);
            Assert.Null(result.Error);
            var output = Assert.Single(result.Outputs);
            Assert.Equal(("probabilities", WireDataType.Fp32), (output.Name, output.Datatype));
            Assert.Equal([3L, 5L], output.Shape);
            if (cuda)
            {
                // cuBLAS may pick a different algorithm in another process: equal within float tolerance.
                var want = expected["probabilities"].GetSpan<float>();
                var got = MemoryMarshal.Cast<byte, float>(output.Data.Span);
                Assert.Equal(want.Length, got.Length);
                for (var i = 0; i < want.Length; i++)
                {
                    Assert.True(Math.Abs(want[i] - got[i]) <= 1e-5, $"element {i}: {want[i]} vs {got[i]}");
                }
            }
            else
            {
                Assert.Equal(Convert.ToHexString(expected["probabilities"].GetBytes()), Convert.ToHexString(output.Data.Span));
            }
        }
    }

    [Fact]
    public async Task TheGrpcEndpointIsHttp2OnlyWhileHealthAndMetricsAreHttp1()
    {
        for (var replica = 0; replica < 2; replica++)
        {
            // The http endpoint: HTTP/1.1 for probes, scrapers and people.
            using var http1 = platform.App.CreateReplicaHttpClient("model-worker", replica);
            using var health = await http1.GetAsync("/health", Ct);
            Assert.Equal(HttpVersion.Version11, health.Version);
            var check = JsonDocument.Parse(await health.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("checks").EnumerateArray()
                .Single(c => c.GetProperty("name").GetString() == "onnxruntime");
            // Only the onnxruntime entry matters here; the overall status also reflects the shared object store.
            Assert.Equal("Healthy", check.GetProperty("status").GetString());
            var description = check.GetProperty("description").GetString()!;
            if (string.Equals(Environment.GetEnvironmentVariable("PLATFORM_TEST_EXECUTION_PROVIDER"), "cuda", StringComparison.OrdinalIgnoreCase))
            {
                // eng/gpu-check.sh on a GPU machine: the workers were started with ModelWorker:ExecutionProvider=cuda.
                Assert.Equal("ONNX Runtime 1.32.0 on CUDA", description);
            }
            else
            {
                Assert.Contains("ONNX Runtime 1.32.0 on CPU", description, StringComparison.Ordinal);
                // No GPU on these machines: the reason CUDA (auto, the default) is not live must be stated.
                Assert.Contains("CUDA not used:", description, StringComparison.Ordinal);
            }
            using var metrics = await http1.GetAsync("/metrics", Ct);
            Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
            Assert.Equal(HttpVersion.Version11, metrics.Version);

            // ...which does not speak HTTP/2 (no preface sniffing any more).
            using var h2c = new HttpClient { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
            await Assert.ThrowsAnyAsync<HttpRequestException>(() => h2c.GetAsync(platform.App.ReplicaAddress("model-worker", replica) + "alive", Ct));

            // The grpc endpoint: HTTP/2 only; an HTTP/1.1 request gets Kestrel's bare 400, not the route.
            var grpcAddress = platform.App.ReplicaAddress("model-worker", replica, "grpc");
            using var plain = new HttpClient();
            using var refused = await plain.GetAsync(grpcAddress + "alive", Ct);
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);

            // grpc.health.v1 on the grpc endpoint answers from the same health checks.
            using var channel = platform.CreateWorkerChannel(replica);
            var serving = await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest(), cancellationToken: Ct);
            Assert.NotEqual(HealthCheckResponse.Types.ServingStatus.Unknown, serving.Status);
        }
    }

    [Theory]
    [InlineData("missing", StatusCode.InvalidArgument, "missing input 'input' (FP32 [-1,16])")]
    [InlineData("datatype", StatusCode.InvalidArgument, "input 'input': datatype FP64 does not match the model's FP32")]
    [InlineData("unknown-datatype", StatusCode.InvalidArgument, "input 'input': unknown datatype Unspecified")]
    [InlineData("shape", StatusCode.InvalidArgument, "input 'input': shape [2,8] does not match the model's [-1,16] (-1 = any size)")]
    [InlineData("count", StatusCode.InvalidArgument, "input 'input': data is 120 bytes but shape [2,16] of FP32 needs 128")]
    [InlineData("output", StatusCode.InvalidArgument, "unknown output 'logits'; model '")]
    [InlineData("expired", StatusCode.DeadlineExceeded, "the deadline")]
    public async Task ARequestsOwnMistakeFailsItAloneAndNamesWhatIsWrong(string mistake, StatusCode code, string message)
    {
        var (name, version) = await SharedModelAsync();
        var good = MemoryMarshal.AsBytes(Floats(32, 1).AsSpan()).ToArray();
        var item = mistake switch
        {
            "missing" => Item(),
            "datatype" => Item(("input", WireDataType.Fp64, [2, 16], new byte[256])),
            "unknown-datatype" => Item(("input", WireDataType.Unspecified, [2, 16], good)),
            "shape" => Item(("input", WireDataType.Fp32, [2, 8], good[..64])),
            "count" => Item(("input", WireDataType.Fp32, [2, 16], good[..120])),
            "output" => Item(("input", WireDataType.Fp32, [2, 16], good)),
            "expired" => Item(("input", WireDataType.Fp32, [2, 16], good)),
            _ => throw new ArgumentOutOfRangeException(nameof(mistake)),
        };
        if (mistake == "output")
        {
            item.Outputs.Add("logits");
        }
        if (mistake == "expired")
        {
            item.DeadlineUnixMs = DateTimeOffset.UtcNow.AddSeconds(-1).ToUnixTimeMilliseconds();
        }

        // The bad request shares its call with a good one, which still gets its answer.
        var request = Batch(name, version, item, Item(("input", WireDataType.Fp32, [2, 16], good)));
        using var channel = platform.CreateWorkerChannel(0);
        var response = await new Platform.Inference.Protocol.Wire.ModelWorker.ModelWorkerClient(channel).InferAsync(request, cancellationToken: Ct);
        Assert.Equal(2, response.Results.Count);
        Assert.NotNull(response.Results[0].Error);
        Assert.Equal(code, (StatusCode)response.Results[0].Error.Code);
        Assert.Contains(message, response.Results[0].Error.Message, StringComparison.Ordinal);
        Assert.Null(response.Results[1].Error);
        Assert.Equal([2L, 4L], response.Results[1].Outputs[0].Shape);
    }

    [Theory]
    [InlineData("unknown-model", "model 'no-such-model' has no active version on this worker")]
    [InlineData("unknown-version", "version 99 is not active on this worker")]
    public async Task AModelVersionNotOnTheReplicaIsNotFound(string mistake, string message)
    {
        var (name, _) = await SharedModelAsync();
        var good = MemoryMarshal.AsBytes(Floats(16, 1).AsSpan()).ToArray();
        var request = mistake == "unknown-model"
            ? Batch("no-such-model", 0, Item(("input", WireDataType.Fp32, [1, 16], good)))
            : Batch(name, 99, Item(("input", WireDataType.Fp32, [1, 16], good)));
        using var channel = platform.CreateWorkerChannel(0);
        var error = await Assert.ThrowsAsync<RpcException>(async () => await new Platform.Inference.Protocol.Wire.ModelWorker.ModelWorkerClient(channel).InferAsync(request, cancellationToken: Ct));
        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        Assert.Contains(message, error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConcurrentCallsAreBatchedAndEachGetsItsOwnRows()
    {
        var (mlp, name, version) = await MlpWithSettingsAsync("batched", 21, new { maxBatchSize = 32, maxQueueDelayMicros = 20_000 },
            ready => ready.GetProperty("settings").GetProperty("maxQueueDelayMicros").GetInt64() == 20_000);

        using var channel = platform.CreateWorkerChannel(0);
        var client = new Platform.Inference.Protocol.Wire.ModelWorker.ModelWorkerClient(channel);
        var inputs = Enumerable.Range(0, 48).Select(i => Floats(16, seed: 1000 + i)).ToArray();
        var results = await Task.WhenAll(inputs.Select(async input =>
            (await client.InferAsync(Batch(name, version, Item(("input", WireDataType.Fp32, [1, 16], MemoryMarshal.AsBytes(input.AsSpan()).ToArray()))), cancellationToken: Ct)).Results[0]));

        Assert.All(results, r => Assert.Null(r.Error));
        Assert.True(results.Max(r => r.BatchSize) > 1, "no request shared a batch");
        for (var i = 0; i < inputs.Length; i++)
        {
            AssertClose(mlp.Predict(inputs[i], 1), MemoryMarshal.Cast<byte, float>(results[i].Outputs[0].Data.Span).ToArray(), $"request {i}");
        }
    }

    [Fact]
    public async Task OneCallCarryingSeveralRequestsRunsThemTogetherAndAnswersEachInOrder()
    {
        // No queue delay: the rows run together because the call's requests are queued as one, not because they wait.
        var (mlp, name, version) = await MlpWithSettingsAsync("multi", 22, new { maxBatchSize = 32, maxQueueDelayMicros = 0 },
            ready => ready.GetProperty("settings").GetProperty("maxQueueDelayMicros").GetInt64() == 0);

        var inputs = Enumerable.Range(0, 6).Select(i => Floats(16 * (i % 2 + 1), seed: 2000 + i)).ToArray();
        var request = Batch(name, version, [.. inputs.Select(input =>
            Item(("input", WireDataType.Fp32, [input.Length / 16, 16], MemoryMarshal.AsBytes(input.AsSpan()).ToArray())))]);
        // Two that cannot join the others: one past its deadline (fails alone), one with a mistake (fails alone, named).
        var expired = Item(("input", WireDataType.Fp32, [1, 16], MemoryMarshal.AsBytes(inputs[0].AsSpan()).ToArray()));
        expired.DeadlineUnixMs = DateTimeOffset.UtcNow.AddSeconds(-1).ToUnixTimeMilliseconds();
        request.Items.Insert(2, expired);
        request.Items.Add(Item(("input", WireDataType.Fp32, [1, 16], new byte[60])));
        using var channel = platform.CreateWorkerChannel(1);
        var client = new Platform.Inference.Protocol.Wire.ModelWorker.ModelWorkerClient(channel);
        var response = await client.InferAsync(request, cancellationToken: Ct);

        Assert.Equal(inputs.Length + 2, response.Results.Count);
        Assert.Equal(StatusCode.DeadlineExceeded, (StatusCode)response.Results[2].Error.Code);
        Assert.Contains("data is 60 bytes", response.Results[^1].Error.Message, StringComparison.Ordinal);
        var answered = response.Results.Where((_, i) => i != 2 && i != inputs.Length + 1).ToArray();
        // 1 + 2 + 1 + 2 + 1 + 2 rows run as one batch: the call's requests are queued as one.
        Assert.All(answered, r => Assert.Equal(9, r.BatchSize));
        for (var i = 0; i < inputs.Length; i++)
        {
            Assert.Null(answered[i].Error);
            Assert.Equal([inputs[i].Length / 16L, 4], answered[i].Outputs[0].Shape);
            AssertClose(mlp.Predict(inputs[i], inputs[i].Length / 16), MemoryMarshal.Cast<byte, float>(answered[i].Outputs[0].Data.Span).ToArray(), $"request {i}");
        }

        // Statistics still count every request: six served in one execution of nine rows, two failed.
        var statistics = Assert.Single((await client.ModelStatisticsAsync(new ModelStatisticsRequest { Model = name }, cancellationToken: Ct)).Models);
        Assert.Equal((9UL, 1UL, 6UL, 2UL), (statistics.InferenceCount, statistics.ExecutionCount, statistics.Success.Count, statistics.Fail.Count));
    }

    [Fact]
    public async Task ACallCarryingMoreRowsThanABatchRunsInBatchesOfAtMostMaxBatchSize()
    {
        var (mlp, name, version) = await MlpWithSettingsAsync("capped", 23, new { maxBatchSize = 4, maxQueueDelayMicros = 0 },
            ready => ready.GetProperty("settings").GetProperty("maxBatchSize").GetInt32() == 4);

        var inputs = Enumerable.Range(0, 10).Select(i => Floats(16, seed: 3000 + i)).ToArray();
        var request = Batch(name, version, [.. inputs.Select(input => Item(("input", WireDataType.Fp32, [1, 16], MemoryMarshal.AsBytes(input.AsSpan()).ToArray())))]);
        using var channel = platform.CreateWorkerChannel(0);
        var client = new Platform.Inference.Protocol.Wire.ModelWorker.ModelWorkerClient(channel);
        var response = await client.InferAsync(request, cancellationToken: Ct);

        Assert.All(response.Results, r => Assert.InRange(r.BatchSize, 1, 4));
        for (var i = 0; i < inputs.Length; i++)
        {
            Assert.Null(response.Results[i].Error);
            AssertClose(mlp.Predict(inputs[i], 1), MemoryMarshal.Cast<byte, float>(response.Results[i].Outputs[0].Data.Span).ToArray(), $"request {i}");
        }
        var statistics = Assert.Single((await client.ModelStatisticsAsync(new ModelStatisticsRequest { Model = name }, cancellationToken: Ct)).Models);
        Assert.Equal(10UL, statistics.Success.Count);
        Assert.True(statistics.ExecutionCount >= 3, $"{statistics.ExecutionCount} executions for 10 rows at 4 per batch");
    }

    [Fact]
    public async Task EveryDatatypeIncludingBytesRoundTripsAndBatchesExactly()
    {
        var name = Unique("alltypes");
        var version = await platform.UploadActiveAsync(name, ModelCatalog.Generate("all-types").Bytes, Ct);
        await platform.PutSettingsAsync(name, new { maxBatchSize = 16, maxQueueDelayMicros = 300_000 }, Ct);
        await platform.WaitUntilReadyEverywhereAsync(name, version, TimeSpan.FromSeconds(60), Ct,
            ready => ready.GetProperty("settings").GetProperty("maxQueueDelayMicros").GetInt64() == 300_000);

        // Two requests with n = 3 share a batch; the n = 4 one cannot join them.
        var items = new[] { AllTypes(2, 3, seed: 1), AllTypes(2, 3, seed: 2), AllTypes(1, 4, seed: 3) };
        using var channel = platform.CreateWorkerChannel(0);
        var client = new Platform.Inference.Protocol.Wire.ModelWorker.ModelWorkerClient(channel);
        var separately = await Task.WhenAll(items.Select(async item => (await client.InferAsync(Batch(name, version, item), cancellationToken: Ct)).Results[0]));
        AssertEachGetsItsOwn(separately);

        // The same three in one call: the two n = 3 items (string tensors included) are queued as one batcher group whose
        // outputs are split back per item, the n = 4 one on its own.
        AssertEachGetsItsOwn([.. (await client.InferAsync(Batch(name, version, items), cancellationToken: Ct)).Results]);

        void AssertEachGetsItsOwn(InferItemResult[] results)
        {
            Assert.All(results, r => Assert.Null(r.Error));
            Assert.Equal([4, 4, 1], results.Select(r => r.BatchSize));
            for (var i = 0; i < items.Length; i++)
            {
                var outputs = results[i].Outputs.ToDictionary(o => o.Name);
                Assert.Equal(13, outputs.Count);
                foreach (var input in items[i].Inputs)
                {
                    var output = outputs["out_" + input.Name[3..]];
                    Assert.Equal(input.Datatype, output.Datatype);
                    Assert.Equal(input.Shape, output.Shape);
                    Assert.Equal(Convert.ToHexString(input.Data.Span), Convert.ToHexString(output.Data.Span));
                }
            }
        }
    }

    [Fact]
    public async Task AFullQueueFailsTheRequestWithResourceExhaustedAndARetryDelay()
    {
        var name = Unique("full");
        var version = await platform.UploadActiveAsync(name, MlpClassifier.Create(new MlpClassifierOptions { Seed = 31 }).ToModel().Bytes, Ct);
        await platform.PutSettingsAsync(name, new { maxBatchSize = 64, maxQueueDelayMicros = 1_500_000, queueCapacity = 2 }, Ct);
        await platform.WaitUntilReadyEverywhereAsync(name, version, TimeSpan.FromSeconds(60), Ct,
            ready => ready.GetProperty("settings").GetProperty("queueCapacity").GetInt32() == 2);

        using var channel = platform.CreateWorkerChannel(1);
        var client = new Platform.Inference.Protocol.Wire.ModelWorker.ModelWorkerClient(channel);
        var good = MemoryMarshal.AsBytes(Floats(16, 3).AsSpan()).ToArray();
        var results = await Task.WhenAll(Enumerable.Range(0, 6).Select(async _ =>
            (await client.InferAsync(Batch(name, version, Item(("input", WireDataType.Fp32, [1, 16], good))), cancellationToken: Ct)).Results[0]));

        Assert.Equal(2, results.Count(r => r.Error is null));
        var rejected = results.Where(r => r.Error is not null).ToArray();
        Assert.Equal(4, rejected.Length);
        Assert.All(rejected, r =>
        {
            Assert.Equal(StatusCode.ResourceExhausted, (StatusCode)r.Error.Code);
            Assert.True(r.Error.RetryAfterMs > 0);
            Assert.Contains("is full", r.Error.Message, StringComparison.Ordinal);
        });
    }

    [Fact]
    public async Task LoadStateAndStatisticsDescribeWhatTheReplicaRan()
    {
        var name = Unique("stats");
        var version = await platform.UploadActiveAsync(name, MlpClassifier.Create(new MlpClassifierOptions { Seed = 51 }).ToModel().Bytes, Ct);
        await platform.WaitUntilReadyEverywhereAsync(name, version, TimeSpan.FromSeconds(60), Ct);
        using var channel = platform.CreateWorkerChannel(0);
        var client = new Platform.Inference.Protocol.Wire.ModelWorker.ModelWorkerClient(channel);

        var states = await client.ModelStatesAsync(new ModelStatesRequest { Model = name }, cancellationToken: Ct);
        var state = Assert.Single(states.Models);
        Assert.Equal((version, LoadState.Ready, 0), (state.Version, state.State, state.QueueDepth));

        var good = MemoryMarshal.AsBytes(Floats(3 * 16, 3).AsSpan()).ToArray();
        for (var i = 0; i < 5; i++)
        {
            var response = await client.InferAsync(Batch(name, version, Item(("input", WireDataType.Fp32, [3, 16], good))), cancellationToken: Ct);
            Assert.Null(response.Results[0].Error);
        }
        var failed = await client.InferAsync(Batch(name, version, Item(("input", WireDataType.Fp32, [3, 16], good[..12]))), cancellationToken: Ct);
        Assert.NotNull(failed.Results[0].Error);

        var statistics = Assert.Single((await client.ModelStatisticsAsync(new ModelStatisticsRequest { Model = name }, cancellationToken: Ct)).Models);
        Assert.Equal(15UL, statistics.InferenceCount);
        Assert.Equal(5UL, statistics.ExecutionCount);
        Assert.Equal(5UL, statistics.Success.Count);
        Assert.Equal(1UL, statistics.Fail.Count);
        Assert.Equal(5UL, statistics.Queue.Count);
        Assert.Equal(5UL, statistics.ComputeInfer.Count);
        Assert.True(statistics.ComputeInfer.Ns > 0 && statistics.Success.Ns >= statistics.ComputeInfer.Ns);
        var batch = Assert.Single(statistics.Batches);
        Assert.Equal((3UL, 5UL), (batch.BatchSize, batch.ComputeInfer.Count));
        Assert.InRange((long)statistics.LastInferenceUnixMs, DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeMilliseconds(), DateTimeOffset.UtcNow.AddSeconds(5).ToUnixTimeMilliseconds());
    }

    private static InferItem AllTypes(int rows, int n, int seed)
    {
        var random = new Random(seed);
        var item = new InferItem();
        foreach (var (_, suffix) in AllTypesModel.Types)
        {
            var name = suffix switch
            {
                "float" => "FP32", "double" => "FP64", "float16" => "FP16", "string" => "BYTES", "bool" => "BOOL",
                _ => suffix.ToUpperInvariant(),
            };
            Assert.True(DataTypes.TryParse(name, out var type));
            byte[] data;
            if (type == Inference.Protocol.DataType.Bytes)
            {
                data = BytesCodec.EncodeStrings([.. Enumerable.Range(0, rows * n).Select(e => $"é{seed}-{e}-{new string('x', random.Next(0, 5))}")]);
            }
            else
            {
                data = new byte[rows * n * type.ElementSize()];
                random.NextBytes(data);
                if (type == Inference.Protocol.DataType.Bool)
                {
                    data = [.. data.Select(b => (byte)(b & 1))];
                }
            }
            var tensor = new Tensor { Name = AllTypesModel.InputName(suffix), Datatype = type.ToWire(), Data = ByteString.CopyFrom(data) };
            tensor.Shape.Add([rows, n]);
            item.Inputs.Add(tensor);
        }
        return item;
    }

    // A 16 -> 32 -> 4 MLP of its own, active everywhere with the given batching settings applied.
    private async Task<(MlpClassifier Mlp, string Name, long Version)> MlpWithSettingsAsync(string prefix, ulong seed, object settings, Func<JsonElement, bool> applied)
    {
        var mlp = MlpClassifier.Create(new MlpClassifierOptions { InputFeatures = 16, HiddenSizes = [32], Classes = 4, Seed = seed });
        var name = Unique(prefix);
        var version = await platform.UploadActiveAsync(name, mlp.ToModel().Bytes, Ct);
        await platform.PutSettingsAsync(name, settings, Ct);
        await platform.WaitUntilReadyEverywhereAsync(name, version, TimeSpan.FromSeconds(60), Ct, applied);
        return (mlp, name, version);
    }

    private Task<(string Name, long Version)> SharedModelAsync() => platform.SharedAsync("errors", async () =>
    {
        var name = Unique("errors");
        var version = await platform.UploadActiveAsync(name, MlpClassifier.Create(new MlpClassifierOptions { Seed = 41 }).ToModel().Bytes, Ct);
        await platform.WaitUntilReadyEverywhereAsync(name, version, TimeSpan.FromSeconds(60), Ct);
        return (name, version);
    });

    private static void AssertClose(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var j = 0; j < expected.Length; j++)
        {
            Assert.True(Math.Abs(expected[j] - actual[j]) < 1e-5f, $"{what} element {j}: {actual[j]} vs {expected[j]}");
        }
    }

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    private static float[] Floats(int count, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 4 - 2))];
    }

    private static InferBatchRequest Batch(string model, long version, params InferItem[] items)
    {
        var request = new InferBatchRequest { Model = model, Version = version };
        request.Items.Add(items);
        return request;
    }

    private static InferItem Item(params (string Name, WireDataType Datatype, long[] Shape, byte[] Data)[] inputs)
    {
        var item = new InferItem { RequestId = Guid.NewGuid().ToString("N") };
        foreach (var (name, datatype, shape, data) in inputs)
        {
            var tensor = new Tensor { Name = name, Datatype = datatype, Data = ByteString.CopyFrom(data) };
            tensor.Shape.Add(shape);
            item.Inputs.Add(tensor);
        }
        return item;
    }
}
