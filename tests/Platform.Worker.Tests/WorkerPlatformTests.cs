using System.Net;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text.Json;
using Google.Protobuf;
using Platform.Inference.Protocol.Wire;
using Platform.OnnxModels;
using Platform.OnnxRuntime;

namespace Platform.Worker.Tests;

/// <summary>ModelWorker in the running platform: models come from the registry, requests arrive as protobuf over h2c.</summary>
public sealed class WorkerPlatformTests(PlatformFixture platform) : IClassFixture<PlatformFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task InferenceOverH2cEqualsInProcessOnnxRuntimeBitForBit()
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
            using var client = platform.CreateH2cClient(replica);
            var request = Request(name, version, ("input", "FP32", [3, 16], MemoryMarshal.AsBytes(input.AsSpan()).ToArray()));
            var (status, httpVersion, response, error, _) = await SendAsync(client, request);
            Assert.True(status == HttpStatusCode.OK, error?.Message);
            Assert.Equal(HttpVersion.Version20, httpVersion);
            Assert.Equal(platform.App.InstanceId("model-worker", replica), $"model-worker-{response!.WorkerInstance}");
            var output = Assert.Single(response.Outputs);
            Assert.Equal(("probabilities", "FP32"), (output.Name, output.Datatype));
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
    public async Task HealthIsServedOverHttp1AndH2cOnTheSamePortAndReportsOnnxRuntime()
    {
        for (var replica = 0; replica < 2; replica++)
        {
            using var http1 = platform.App.CreateReplicaHttpClient("model-worker", replica);
            using var response = await http1.GetAsync("/health", Ct);
            var body = await response.Content.ReadAsStringAsync(Ct);
            // Only the onnxruntime entry matters here; the overall status also reflects the shared object store.
            Assert.Equal(HttpVersion.Version11, response.Version);
            var check = JsonDocument.Parse(body).RootElement.GetProperty("checks").EnumerateArray()
                .Single(c => c.GetProperty("name").GetString() == "onnxruntime");
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

            using var h2c = platform.CreateH2cClient(replica);
            using var alive = await h2c.GetAsync("/alive", Ct);
            Assert.Equal(HttpStatusCode.OK, alive.StatusCode);
            Assert.Equal(HttpVersion.Version20, alive.Version);
        }
    }

    [Theory]
    [InlineData("missing", 400, "missing input 'input'")]
    [InlineData("datatype", 400, "input 'input': datatype FP64 does not match the model's FP32")]
    [InlineData("unknown-datatype", 400, "input 'input': unknown datatype 'FLOAT'")]
    [InlineData("shape", 400, "input 'input': shape [2, 8] does not match the model's [batch, 16]")]
    [InlineData("count", 400, "input 'input': shape [2, 16] needs 32 FP32 elements (128 bytes) but 120 bytes")]
    [InlineData("output", 400, "unknown output 'logits'")]
    [InlineData("unknown-model", 404, "model 'no-such-model' has no active version on this worker")]
    [InlineData("unknown-version", 404, "version 99 is not active on this worker")]
    [InlineData("expired", 504, "the deadline")]
    public async Task ErrorsCarryTheStatusAndNameWhatIsWrong(string mistake, int status, string message)
    {
        var (name, version) = await SharedModelAsync();
        var good = MemoryMarshal.AsBytes(Floats(32, 1).AsSpan()).ToArray();
        var request = mistake switch
        {
            "missing" => Request(name, version),
            "datatype" => Request(name, version, ("input", "FP64", [2, 16], new byte[256])),
            "unknown-datatype" => Request(name, version, ("input", "FLOAT", [2, 16], good)),
            "shape" => Request(name, version, ("input", "FP32", [2, 8], good[..64])),
            "count" => Request(name, version, ("input", "FP32", [2, 16], good[..120])),
            "output" => Request(name, version, ("input", "FP32", [2, 16], good)),
            "unknown-model" => Request("no-such-model", 0, ("input", "FP32", [2, 16], good)),
            "unknown-version" => Request(name, 99, ("input", "FP32", [2, 16], good)),
            "expired" => Request(name, version, ("input", "FP32", [2, 16], good)),
            _ => throw new ArgumentOutOfRangeException(nameof(mistake)),
        };
        if (mistake == "output")
        {
            request.Outputs.Add("logits");
        }
        if (mistake == "expired")
        {
            request.DeadlineUnixMs = DateTimeOffset.UtcNow.AddSeconds(-1).ToUnixTimeMilliseconds();
        }

        using var client = platform.CreateH2cClient(0);
        var (actual, _, _, error, _) = await SendAsync(client, request);
        Assert.Equal(status, (int)actual);
        Assert.Equal(status, error!.Code);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConcurrentRequestsAreBatchedAndEachGetsItsOwnRows()
    {
        var mlp = MlpClassifier.Create(new MlpClassifierOptions { InputFeatures = 16, HiddenSizes = [32], Classes = 4, Seed = 21 });
        var name = Unique("batched");
        var version = await platform.UploadActiveAsync(name, mlp.ToModel().Bytes, Ct);
        await platform.PutSettingsAsync(name, new { maxBatchSize = 32, maxQueueDelayMicros = 20_000 }, Ct);
        await platform.WaitUntilReadyEverywhereAsync(name, version, TimeSpan.FromSeconds(60), Ct,
            ready => ready.GetProperty("settings").GetProperty("maxQueueDelayMicros").GetInt64() == 20_000);

        using var client = platform.CreateH2cClient(0);
        var inputs = Enumerable.Range(0, 48).Select(i => Floats(16, seed: 1000 + i)).ToArray();
        var results = await Task.WhenAll(inputs.Select(input =>
            SendAsync(client, Request(name, version, ("input", "FP32", [1, 16], MemoryMarshal.AsBytes(input.AsSpan()).ToArray())))));

        Assert.All(results, r => Assert.True(r.Status == HttpStatusCode.OK, r.Error?.Message));
        Assert.True(results.Max(r => r.Response!.BatchSize) > 1, "no request shared a batch");
        for (var i = 0; i < inputs.Length; i++)
        {
            var expected = mlp.Predict(inputs[i], 1);
            var actual = MemoryMarshal.Cast<byte, float>(results[i].Response!.Outputs[0].Data.Span).ToArray();
            Assert.Equal(expected.Length, actual.Length);
            for (var j = 0; j < expected.Length; j++)
            {
                Assert.True(Math.Abs(expected[j] - actual[j]) < 1e-5f, $"request {i} element {j}: {actual[j]} vs {expected[j]}");
            }
        }
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
        var requests = new[] { AllTypes(name, version, 2, 3, seed: 1), AllTypes(name, version, 2, 3, seed: 2), AllTypes(name, version, 1, 4, seed: 3) };
        using var client = platform.CreateH2cClient(0);
        var results = await Task.WhenAll(requests.Select(r => SendAsync(client, r)));

        Assert.All(results, r => Assert.True(r.Status == HttpStatusCode.OK, r.Error?.Message));
        Assert.Equal([4, 4, 1], results.Select(r => r.Response!.BatchSize));
        for (var i = 0; i < requests.Length; i++)
        {
            var outputs = results[i].Response!.Outputs.ToDictionary(o => o.Name);
            Assert.Equal(13, outputs.Count);
            foreach (var input in requests[i].Inputs)
            {
                var output = outputs["out_" + input.Name[3..]];
                Assert.Equal(input.Datatype, output.Datatype);
                Assert.Equal(input.Shape, output.Shape);
                Assert.Equal(Convert.ToHexString(input.Data.Span), Convert.ToHexString(output.Data.Span));
            }
        }
    }

    private static WorkerInferRequest AllTypes(string model, long version, int rows, int n, int seed)
    {
        var random = new Random(seed);
        var request = new WorkerInferRequest { Model = model, Version = version };
        foreach (var (type, suffix) in AllTypesModel.Types)
        {
            var datatype = suffix switch
            {
                "float" => "FP32", "double" => "FP64", "float16" => "FP16", "string" => "BYTES", "bool" => "BOOL",
                _ => suffix.ToUpperInvariant(),
            };
            byte[] data;
            if (datatype == "BYTES")
            {
                using var buffer = new MemoryStream();
                for (var e = 0; e < rows * n; e++)
                {
                    var text = System.Text.Encoding.UTF8.GetBytes($"é{seed}-{e}-{new string('x', random.Next(0, 5))}");
                    buffer.Write(BitConverter.GetBytes(text.Length));
                    buffer.Write(text);
                }
                data = buffer.ToArray();
            }
            else
            {
                var size = datatype switch { "BOOL" or "UINT8" or "INT8" => 1, "UINT16" or "INT16" or "FP16" => 2, "UINT32" or "INT32" or "FP32" => 4, _ => 8 };
                data = new byte[rows * n * size];
                random.NextBytes(data);
                if (datatype == "BOOL")
                {
                    data = [.. data.Select(b => (byte)(b & 1))];
                }
            }
            var tensor = new WireTensor { Name = AllTypesModel.InputName(suffix), Datatype = datatype, Data = ByteString.CopyFrom(data) };
            tensor.Shape.Add([rows, n]);
            request.Inputs.Add(tensor);
        }
        return request;
    }

    [Fact]
    public async Task AFullQueueAnswers429WithRetryAfter()
    {
        var name = Unique("full");
        var version = await platform.UploadActiveAsync(name, MlpClassifier.Create(new MlpClassifierOptions { Seed = 31 }).ToModel().Bytes, Ct);
        await platform.PutSettingsAsync(name, new { maxBatchSize = 64, maxQueueDelayMicros = 1_500_000, queueCapacity = 2 }, Ct);
        await platform.WaitUntilReadyEverywhereAsync(name, version, TimeSpan.FromSeconds(60), Ct,
            ready => ready.GetProperty("settings").GetProperty("queueCapacity").GetInt32() == 2);

        using var client = platform.CreateH2cClient(1);
        var good = MemoryMarshal.AsBytes(Floats(16, 3).AsSpan()).ToArray();
        var results = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => SendAsync(client, Request(name, version, ("input", "FP32", [1, 16], good)))));

        Assert.Equal(2, results.Count(r => r.Status == HttpStatusCode.OK));
        var rejected = results.Where(r => r.Status == HttpStatusCode.TooManyRequests).ToArray();
        Assert.Equal(4, rejected.Length);
        Assert.All(rejected, r =>
        {
            Assert.True(r.RetryAfter >= TimeSpan.FromSeconds(1), $"Retry-After {r.RetryAfter}");
            Assert.True(r.Error!.RetryAfterMs > 0);
            Assert.Contains("is full", r.Error.Message, StringComparison.Ordinal);
        });
    }

    private Task<(string Name, long Version)> SharedModelAsync() => platform.SharedAsync("errors", async () =>
    {
        var name = Unique("errors");
        var version = await platform.UploadActiveAsync(name, MlpClassifier.Create(new MlpClassifierOptions { Seed = 41 }).ToModel().Bytes, Ct);
        await platform.WaitUntilReadyEverywhereAsync(name, version, TimeSpan.FromSeconds(60), Ct);
        return (name, version);
    });

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    private static float[] Floats(int count, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 4 - 2))];
    }

    private static WorkerInferRequest Request(string model, long version, params (string Name, string Datatype, long[] Shape, byte[] Data)[] inputs)
    {
        var request = new WorkerInferRequest { Model = model, Version = version, RequestId = Guid.NewGuid().ToString("N") };
        foreach (var (name, datatype, shape, data) in inputs)
        {
            var tensor = new WireTensor { Name = name, Datatype = datatype, Data = ByteString.CopyFrom(data) };
            tensor.Shape.Add(shape);
            request.Inputs.Add(tensor);
        }
        return request;
    }

    private static async Task<(HttpStatusCode Status, Version HttpVersion, WorkerInferResponse? Response, WorkerError? Error, TimeSpan? RetryAfter)> SendAsync(
        HttpClient client, WorkerInferRequest request)
    {
        using var content = new ByteArrayContent(request.ToByteArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/x-protobuf");
        using var response = await client.PostAsync("/v1/infer", content, Ct);
        var body = await response.Content.ReadAsByteArrayAsync(Ct);
        Assert.Equal("application/x-protobuf", response.Content.Headers.ContentType?.MediaType);
        return response.IsSuccessStatusCode
            ? (response.StatusCode, response.Version, WorkerInferResponse.Parser.ParseFrom(body), null, null)
            : (response.StatusCode, response.Version, null, WorkerError.Parser.ParseFrom(body), response.Headers.RetryAfter?.Delta);
    }
}
