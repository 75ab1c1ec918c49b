using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Platform.Inference.OpenInference;
using Platform.Inference.Protocol;
using Platform.OnnxModels;
using Platform.OnnxRuntime;
using Platform.TestSupport;

namespace Platform.Serving.Tests;

public sealed class ServingTests(ServingFixture fixture)
{
    private const int Features = 16;
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    private ServingClient Client => fixture.Client;

    private static GeneratedModel Mlp(ulong seed) => ModelCatalog.Generate("mlp", new ModelRequest { Seed = seed });

    private static InferTensor Input(int rows, int seed)
    {
        var random = new Random(seed);
        var values = Enumerable.Range(0, rows * Features).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
        return new InferTensor("input", DataType.Fp32, [rows, Features], MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
    }

    private byte[] OrtReference(GeneratedModel model, InferTensor input)
    {
        using var session = fixture.Ort.CreateSession(model.Bytes);
        var floats = MemoryMarshal.Cast<byte, float>(input.Data.Span).ToArray();
        using var result = session.Run([new NamedTensor("input", TensorData.From(floats, input.Shape))]);
        return result["probabilities"].GetBytes().ToArray();
    }

    private async Task<GeneratedModel> DeployAsync(string name, ulong seed)
    {
        var model = Mlp(seed);
        var version = await Client.UploadAsync(name, model.Bytes, Ct);
        await Client.ActivateAsync(name, version, Ct);
        await Client.WaitServedAsync(name, version, Input(1, 0), Ct);
        return model;
    }

    [Fact]
    public async Task InferEqualsOnnxRuntimeInProcessBitForBit()
    {
        var model = await DeployAsync("bitwise", 11);
        foreach (var rows in new[] { 1, 3 })
        {
            var input = Input(rows, rows);
            var (status, body, response) = await Client.PostAsync("/v2/models/bitwise/infer", [input], TensorEncoding.Binary,
                parameters: new InferRequestParameters { BinaryDataOutput = true }, id: $"req-{rows}", ct: Ct);
            Assert.True(status == 200, Encoding.UTF8.GetString(body));
            var decoded = ServingClient.Decode(body, response);
            Assert.Equal($"req-{rows}", decoded.Id);
            Assert.Equal("bitwise", decoded.ModelName);
            Assert.Equal("1", decoded.ModelVersion);
            Assert.Equal([(long)rows, 4], decoded["probabilities"].Shape);
            Assert.Equal(OrtReference(model, input), decoded["probabilities"].Data.ToArray());
        }
    }

    [Fact]
    public async Task InferenceApiReachesTheWorkersOverGrpc()
    {
        // The hop to the workers is gRPC (HTTP/2 streams over pooled connections): the workers' own request metrics say
        // which protocol their Infer calls came in on. (WorkerFailureTests may be restarting a replica meanwhile: a replica that does
        // not answer /metrics, or answers with fresh counters, is read again on the next round.)
        await DeployAsync("grpc-hop", 12);
        var protocols = new List<string>();
        for (var round = 0; round < 10 && protocols.Count == 0; round++)
        {
            for (var i = 0; i < 4; i++)
            {
                var (status, body, _) = await Client.PostAsync("/v2/models/grpc-hop/infer", [Input(1, i)], TensorEncoding.Binary, ct: Ct);
                Assert.True(status == 200, Encoding.UTF8.GetString(body));
            }

            foreach (var replica in new[] { 0, 1 })
            {
                using var worker = fixture.App.CreateReplicaHttpClient("model-worker", replica);
                string metrics;
                try
                {
                    metrics = await worker.GetStringAsync("/metrics", Ct);
                }
                catch (HttpRequestException)
                {
                    continue;
                }

                protocols.AddRange(metrics.Split('\n')
                    .Where(l => l.StartsWith("http_server_request_duration_seconds_count{", StringComparison.Ordinal) && l.Contains("http_route=\"/platform.worker.v1.ModelWorker/Infer\"", StringComparison.Ordinal))
                    .Select(l => System.Text.RegularExpressions.Regex.Match(l, "network_protocol_version=\"([^\"]+)\"").Groups[1].Value));
            }
        }

        Assert.NotEmpty(protocols);
        Assert.All(protocols, p => Assert.Equal("2", p));
    }

    [Fact]
    public async Task JsonBinaryNestedAndFlatAllAgree()
    {
        var model = await DeployAsync("agree", 12);
        var input = Input(2, 5);
        var expected = OrtReference(model, input);
        foreach (var encoding in new[] { TensorEncoding.JsonFlat, TensorEncoding.JsonNested, TensorEncoding.Binary })
        {
            foreach (var binaryOut in new[] { false, true })
            {
                var (status, body, response) = await Client.PostAsync("/v2/models/agree/infer", [input], encoding,
                    outputs: [new RequestedOutput("probabilities", binaryOut)], ct: Ct);
                Assert.True(status == 200, Encoding.UTF8.GetString(body));
                Assert.Equal(binaryOut ? "application/octet-stream" : "application/json", response.Content.Headers.ContentType?.MediaType);
                Assert.Equal(expected, ServingClient.Decode(body, response)["probabilities"].Data.ToArray());
            }
        }
    }

    [Fact]
    public async Task ProtocolMetadataAndHealth()
    {
        await DeployAsync("meta", 13);
        var http = Client.Inference;
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/v2/health/live", Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/v2/health/ready", Ct)).StatusCode);
        using var server = JsonDocument.Parse(await http.GetStringAsync("/v2", Ct));
        Assert.Contains("binary_tensor_data", server.RootElement.GetProperty("extensions").EnumerateArray().Select(e => e.GetString()));
        using var metadata = JsonDocument.Parse(await http.GetStringAsync("/v2/models/meta", Ct));
        Assert.Equal("meta", metadata.RootElement.GetProperty("name").GetString());
        Assert.Equal(["1"], metadata.RootElement.GetProperty("versions").EnumerateArray().Select(v => v.GetString()));
        var input = metadata.RootElement.GetProperty("inputs")[0];
        Assert.Equal(("input", "FP32"), (input.GetProperty("name").GetString(), input.GetProperty("datatype").GetString()));
        Assert.Equal([-1L, 16], input.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/v2/models/meta/versions/1", Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/v2/models/meta/ready", Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/v2/models/meta/versions/1/ready", Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/v2/models/meta/versions/9/ready", Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/v2/models/nope", Ct)).StatusCode);
        foreach (var path in new[] { "/v2/models/meta/labels", "/v2/nowhere" })
        {
            using var unknown = await http.GetAsync(path, Ct);
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
            Assert.StartsWith($"no route GET {path};", JsonDocument.Parse(await unknown.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("error").GetString(),
                StringComparison.Ordinal);
        }
    }

    public static TheoryData<string, string?, int, string> ErrorCases => new()
    {
        { "/v2/models/nope/infer", """{"inputs":[]}""", 404, "unknown model 'nope' (no active version)" },
        { "/v2/models/errors/versions/7/infer", """{"inputs":[]}""", 404, "model 'errors' has no active version 7" },
        { "/v2/models/errors/versions/x/infer", """{"inputs":[]}""", 404, "model 'errors' has no version 'x'" },
        { "/v2/models/errors/infer", """{"inputs":[{"name":"input","datatype":"FP32","shape":[1,15],"data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]}]}""", 400,
            "input 'input': shape [1,15] does not match the model's [-1,16] (-1 = any size)" },
        { "/v2/models/errors/infer", """{"inputs":[{"name":"input","datatype":"FP64","shape":[1,16],"data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}]}""", 400,
            "input 'input': datatype FP64 does not match the model's FP32" },
        { "/v2/models/errors/infer", """{"inputs":[{"name":"input","datatype":"FP32","shape":[1,16],"data":[1,2,3]}]}""", 400,
            "input 'input': shape [1,16] needs 16 elements but 'data' has 3" },
        { "/v2/models/errors/infer", """{"inputs":[{"name":"input","datatype":"FP32","shape":[2,16],"data":[[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16],[1,2,3]]}]}""", 400,
            "input 'input': nested 'data' does not match the shape [2,16]: dimension 1 has 3 items, expected 16" },
        { "/v2/models/errors/infer", """{"inputs":[{"name":"input","datatype":"UINT8","shape":[1],"data":[256]}]}""", 400,
            "input 'input': element 0 (256) is out of the range of UINT8 (0 to 255)" },
        { "/v2/models/errors/infer", """{"inputs":[]}""", 400,
            "missing input 'input' (FP32 [-1,16]); model 'errors' expects 'input' FP32 [-1,16]" },
        { "/v2/models/errors/infer", """{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}""", 400,
            "unknown input 'x'; model 'errors' expects 'input' FP32 [-1,16]" },
        { "/v2/models/errors/infer", """{"inputs":[{"name":"input","datatype":"FP32","shape":[1,16],"data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}],"outputs":[{"name":"logits"}]}""", 400,
            "unknown output 'logits'; model 'errors' has outputs 'probabilities'" },
        { "/v2/models/errors/infer", """{"inputs":[{"name":"input","datatype" "FP32"}]}""", 400,
            // Byte positions are 1-based: 38 bytes precede the '"' that should have been a ':'.
            "malformed JSON at line 1, byte 39: '\"' is invalid after a property name. Expected a ':'." },
    };

    [Theory]
    [MemberData(nameof(ErrorCases))]
    public async Task ErrorsHaveTheDocumentedStatusAndMessage(string path, string? json, int status, string message)
    {
        await EnsureDeployedAsync("errors", 14);
        var (actual, body, response) = await Client.PostRawAsync(path, Encoding.UTF8.GetBytes(json ?? ""), null, Ct);
        Assert.Equal(status, actual);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var error = JsonDocument.Parse(body);
        Assert.Equal(message, error.RootElement.GetProperty("error").GetString());
    }

    [Fact]
    public async Task BinaryErrorsAreClientErrors()
    {
        await EnsureDeployedAsync("errors", 14);
        var header = Encoding.UTF8.GetBytes("""{"inputs":[{"name":"input","datatype":"FP32","shape":[1,16],"parameters":{"binary_data_size":60}}]}""");
        var (status, body, _) = await Client.PostRawAsync("/v2/models/errors/infer", [.. header, .. new byte[60]], header.Length, Ct);
        Assert.Equal(400, status);
        Assert.Equal("input 'input': binary_data_size is 60 bytes but shape [1,16] of FP32 needs 64",
            JsonDocument.Parse(body).RootElement.GetProperty("error").GetString());
        (status, body, _) = await Client.PostRawAsync("/v2/models/errors/infer", [.. header, .. new byte[64]], header.Length + 65, Ct);
        Assert.Equal(400, status);
        Assert.StartsWith("Inference-Header-Content-Length", JsonDocument.Parse(body).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ClassificationReturnsEachRowsTopClassesOverRestAndGrpc()
    {
        var model = await DeployAsync("classified", 18);
        var input = Input(2, 9);
        var probabilities = MemoryMarshal.Cast<byte, float>(OrtReference(model, input)).ToArray();
        // What Triton's classification extension answers: per row the two highest values and their indices, highest first.
        var expected = Enumerable.Range(0, 2).SelectMany(row => Enumerable.Range(0, 4)
            .OrderByDescending(c => probabilities[row * 4 + c]).ThenBy(c => c).Take(2)
            .Select(c => $"{probabilities[row * 4 + c].ToString("F6", System.Globalization.CultureInfo.InvariantCulture)}:{c}")).ToArray();

        var data = string.Join(",", MemoryMarshal.Cast<byte, float>(input.Data.Span).ToArray().Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)));
        var json = $$$"""{"inputs":[{"name":"input","datatype":"FP32","shape":[2,16],"data":[{{{data}}}]}],"outputs":[{"name":"probabilities","parameters":{"classification":2}}]}""";
        var (status, body, _) = await Client.PostRawAsync("/v2/models/classified/infer", Encoding.UTF8.GetBytes(json), null, Ct);
        Assert.True(status == 200, Encoding.UTF8.GetString(body));
        var output = JsonDocument.Parse(body).RootElement.GetProperty("outputs")[0];
        Assert.Equal(("probabilities", "BYTES"), (output.GetProperty("name").GetString(), output.GetProperty("datatype").GetString()));
        Assert.Equal([2L, 2], output.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
        Assert.Equal(expected, output.GetProperty("data").EnumerateArray().Select(e => e.GetString()));

        using var channel = GrpcServing.Channel(fixture);
        var request = GrpcInferCodec.WriteRequest("classified", null, [input], raw: true);
        var requested = new Platform.Inference.OpenInference.Grpc.ModelInferRequest.Types.InferRequestedOutputTensor { Name = "probabilities" };
        requested.Parameters["classification"] = new Platform.Inference.OpenInference.Grpc.InferParameter { Int64Param = 2 };
        request.Outputs.Add(requested);
        var answer = GrpcInferCodec.ReadResponse(await GrpcServing.Client(channel).ModelInferAsync(request, GrpcServing.With(GrpcServing.Key(fixture), Ct)));
        Assert.Equal(expected, BytesCodec.DecodeStrings("probabilities", answer["probabilities"].Data.Span, 4));

        // More classes than the output has is the client's mistake: 400 naming the parameter.
        (status, body, _) = await Client.PostRawAsync("/v2/models/classified/infer", Encoding.UTF8.GetBytes(json.Replace("\"classification\":2", "\"classification\":5", StringComparison.Ordinal)), null, Ct);
        Assert.Equal(400, status);
        Assert.Equal("output 'probabilities': parameters.classification asks for 5 classes but the output has 4 per batch row",
            JsonDocument.Parse(body).RootElement.GetProperty("error").GetString());
    }

    [Fact]
    public async Task TheModelConfigurationIsTritonsWithTheBatchDimensionLeftOut()
    {
        await DeployAsync("configured", 17);
        var http = Client.Inference;
        using var server = JsonDocument.Parse(await http.GetStringAsync("/v2", Ct));
        Assert.Contains("model_configuration", server.RootElement.GetProperty("extensions").EnumerateArray().Select(e => e.GetString()));
        foreach (var path in new[] { "/v2/models/configured/config", "/v2/models/configured/versions/1/config" })
        {
            using var config = JsonDocument.Parse(await http.GetStringAsync(path, Ct));
            var root = config.RootElement;
            Assert.Equal(("configured", "onnxruntime_onnx", "onnxruntime"),
                (root.GetProperty("name").GetString(), root.GetProperty("platform").GetString(), root.GetProperty("backend").GetString()));
            // The model's settings: 32 rows per batch and a 1 ms window by default.
            Assert.Equal(32, root.GetProperty("max_batch_size").GetInt32());
            Assert.Equal(1000, root.GetProperty("dynamic_batching").GetProperty("max_queue_delay_microseconds").GetInt64());
            Assert.False(root.GetProperty("model_transaction_policy").GetProperty("decoupled").GetBoolean());
            var input = Assert.Single(root.GetProperty("input").EnumerateArray());
            Assert.Equal(("input", "TYPE_FP32"), (input.GetProperty("name").GetString(), input.GetProperty("data_type").GetString()));
            Assert.Equal([16L], input.GetProperty("dims").EnumerateArray().Select(d => d.GetInt64()));
            var output = Assert.Single(root.GetProperty("output").EnumerateArray());
            Assert.Equal(("probabilities", "TYPE_FP32"), (output.GetProperty("name").GetString(), output.GetProperty("data_type").GetString()));
            Assert.Equal([4L], output.GetProperty("dims").EnumerateArray().Select(d => d.GetInt64()));
        }

        using var missing = await http.GetAsync("/v2/models/configured/versions/9/config", Ct);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("model 'configured' has no active version 9", JsonDocument.Parse(await missing.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("error").GetString());
    }

    [Theory]
    [InlineData("gzip")]
    [InlineData("deflate")]
    [InlineData("br")]
    public async Task CompressedRequestBodiesAnswerAsUncompressedOnes(string coding)
    {
        // Triton's HTTP clients compress request bodies on request (Content-Encoding gzip or deflate; deflate is zlib's format).
        var model = await DeployAsync($"compressed-{coding}", 16);
        var input = Input(2, 7);
        var expected = OrtReference(model, input);
        foreach (var encoding in new[] { TensorEncoding.JsonFlat, TensorEncoding.Binary })
        {
            var buffer = new System.Buffers.ArrayBufferWriter<byte>();
            var jsonLength = InferClientCodec.WriteRequest(buffer, [input], encoding, [new RequestedOutput("probabilities", BinaryData: true)], null, null);
            var (status, body, response) = await Client.PostRawAsync($"/v2/models/compressed-{coding}/infer", ServingClient.Compress(buffer.WrittenSpan.ToArray(), coding),
                encoding == TensorEncoding.Binary ? jsonLength : null, Ct, coding);
            Assert.True(status == 200, Encoding.UTF8.GetString(body));
            Assert.Equal(expected, ServingClient.Decode(body, response)["probabilities"].Data.ToArray());
        }
    }

    [Fact]
    public async Task AnUnknownContentEncodingIs415AndACorruptBodyIs400()
    {
        await EnsureDeployedAsync("errors", 14);
        var json = Encoding.UTF8.GetBytes("""{"inputs":[{"name":"input","datatype":"FP32","shape":[1,16],"data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}]}""");

        var (status, body, _) = await Client.PostRawAsync("/v2/models/errors/infer", json, null, Ct, "zstd");
        Assert.Equal(415, status);
        Assert.Equal("Content-Encoding: 'zstd' is not supported; send the body uncompressed or as gzip, deflate or br",
            JsonDocument.Parse(body).RootElement.GetProperty("error").GetString());

        // A gzip header followed by a deflate block of the reserved type 3.
        (status, body, _) = await Client.PostRawAsync("/v2/models/errors/infer", [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff], null, Ct, "gzip");
        Assert.Equal(400, status);
        Assert.StartsWith("body: the compressed request body could not be decoded", JsonDocument.Parse(body).RootElement.GetProperty("error").GetString(),
            StringComparison.Ordinal);
    }

    [Fact]
    public async Task CacheHitReturnsIdenticalOutput()
    {
        await DeployAsync("cached", 15);
        var input = Input(1, 99);
        var parameters = new InferRequestParameters { Cache = true };
        var (s1, first, r1) = await Client.PostAsync("/v2/models/cached/infer", [input], TensorEncoding.JsonFlat, parameters: parameters, ct: Ct);
        var (s2, second, r2) = await Client.PostAsync("/v2/models/cached/infer", [input], TensorEncoding.JsonFlat, parameters: parameters, ct: Ct);
        Assert.Equal((200, 200), (s1, s2));
        Assert.Equal("miss", r1.Headers.GetValues("Platform-Cache").Single());
        Assert.Equal("hit", r2.Headers.GetValues("Platform-Cache").Single());
        Assert.Equal(first, second);
        // The miss ran on a worker; the hit did not (Server-Timing lists a worker phase only when one answered).
        Assert.Contains("worker;dur=", r1.Headers.GetValues("Server-Timing").Single(), StringComparison.Ordinal);
        Assert.DoesNotContain("worker;dur=", r2.Headers.GetValues("Server-Timing").Single(), StringComparison.Ordinal);
        Assert.Contains("cache;dur=", r2.Headers.GetValues("Server-Timing").Single(), StringComparison.Ordinal);
        var (_, _, r3) = await Client.PostAsync("/v2/models/cached/infer", [input], TensorEncoding.JsonFlat, ct: Ct);
        Assert.False(r3.Headers.Contains("Platform-Cache"), "the model does not cache by default");
    }

    [Fact]
    public async Task AFullQueueAnswers429WithRetryAfterNever5xx()
    {
        // The heavy benchmark model with one queue slot and no batching: 64 concurrent requests overflow both replicas
        // even after InferenceApi's retries on the other replica.
        const int features = 512;
        var model = ModelCatalog.Generate("benchmark", new ModelRequest { Features = features });
        var version = await Client.UploadAsync("overload", model.Bytes, Ct);
        await Client.SetSettingsAsync("overload", new { maxBatchSize = 1, maxQueueDelayMicros = 0, queueCapacity = 1, cacheEnabled = false, cacheTtlSeconds = 60 }, Ct);
        await Client.ActivateAsync("overload", version, Ct);
        var row = new float[features];
        var input = new InferTensor("input", DataType.Fp32, [1, features], MemoryMarshal.AsBytes(row.AsSpan()).ToArray());
        await Client.WaitServedAsync("overload", version, input, Ct);

        var rejected = new List<(int Status, string? RetryAfter, string Error)>();
        var unexpected = new List<string>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (rejected.Count == 0 && DateTime.UtcNow < deadline)
        {
            await Task.WhenAll(Enumerable.Range(0, 64).Select(async _ =>
            {
                var (status, body, response) = await Client.PostAsync("/v2/models/overload/infer", [input], TensorEncoding.Binary, ct: Ct);
                if (status == 200)
                {
                    return;
                }

                var text = Encoding.UTF8.GetString(body);
                lock (rejected)
                {
                    if (status is 429 or 503 && response.Content.Headers.ContentType?.MediaType == "application/json")
                    {
                        rejected.Add((status, response.Headers.RetryAfter?.Delta?.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
                            JsonDocument.Parse(body).RootElement.GetProperty("error").GetString()!));
                    }
                    else
                    {
                        unexpected.Add($"{status} {text}");
                    }
                }
            }));
        }

        Assert.Empty(unexpected);
        Assert.Contains(rejected, r => r.Status == 429);
        Assert.All(rejected, r => Assert.True(r.RetryAfter is { } s && int.Parse(s, System.Globalization.CultureInfo.InvariantCulture) >= 1, $"{r.Status} without Retry-After: {r.Error}"));
        Assert.Contains(rejected, r => r.Status == 429 && r.Error == "The queue of model 'overload' version 1 is full (1 requests waiting); retry later.");
    }

    [Fact]
    public async Task ActivatingVersionTwoSwitchesTrafficWithoutFailingRequests()
    {
        var v1 = await DeployAsync("switch", 21);
        var v2Model = Mlp(22);
        var input = Input(1, 3);
        var expected1 = OrtReference(v1, input);
        var expected2 = OrtReference(v2Model, input);
        using var stop = new CancellationTokenSource();
        var failures = new List<string>();
        var versions = new List<string>();
        var load = Enumerable.Range(0, 4).Select(async _ =>
        {
            while (!stop.IsCancellationRequested)
            {
                var (status, body, response) = await Client.PostAsync("/v2/models/switch/infer", [input], TensorEncoding.Binary,
                    parameters: new InferRequestParameters { BinaryDataOutput = true }, ct: Ct);
                lock (failures)
                {
                    if (status != 200)
                    {
                        failures.Add($"{status} {Encoding.UTF8.GetString(body)}");
                        continue;
                    }

                    var decoded = ServingClient.Decode(body, response);
                    versions.Add(decoded.ModelVersion!);
                    var expected = decoded.ModelVersion == "2" ? expected2 : expected1;
                    if (!expected.AsSpan().SequenceEqual(decoded["probabilities"].Data.Span))
                    {
                        failures.Add($"version {decoded.ModelVersion} answered other numbers");
                    }
                }
            }
        }).ToArray();

        // The load writes versions and failures under one lock. Each wait below also ends at the first failure, which the
        // assertions after the load then report.
        bool Failed()
        {
            lock (failures)
            {
                return failures.Count > 0;
            }
        }

        int Answers(string version)
        {
            lock (failures)
            {
                return versions.Count(v => v == version);
            }
        }

        try
        {
            // The switch happens under load that version 1 is already answering.
            await Waits.UntilAsync(() => Answers("1") >= 10 || Failed(), TimeSpan.FromSeconds(30), "10 answers of version 1 under load", Ct);
            var version2 = await Client.UploadAsync("switch", v2Model.Bytes, Ct);
            await Client.ActivateAsync("switch", version2, Ct);
            await Waits.UntilAsync(() =>
            {
                lock (failures)
                {
                    return versions.TakeLast(10).All(v => v == "2") || failures.Count > 0;
                }
            }, TimeSpan.FromSeconds(30), "10 answers in a row of version 2", Ct);

            // The load goes on past the switch, while the workers let version 1 go.
            var switched = Answers("2");
            await Waits.UntilAsync(() => Answers("2") >= switched + 40 || Failed(), TimeSpan.FromSeconds(30), "40 further answers of version 2", Ct);
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(load);
        }

        Assert.Empty(failures);
        Assert.Contains("1", versions);
        Assert.Equal("2", versions[^1]);
    }

    private Task EnsureDeployedAsync(string name, ulong seed) => fixture.DeployOnceAsync(name, () => DeployAsync(name, seed), Ct);
}
