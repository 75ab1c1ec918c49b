using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Grpc.Core;
using Grpc.Health.V1;
using Platform.Inference.OpenInference;
using Platform.Inference.OpenInference.Grpc;
using Platform.Inference.Protocol;
using Platform.OnnxModels;
using Platform.OnnxRuntime;

namespace Platform.Serving.Tests;

/// <summary>
/// The Open Inference Protocol over gRPC on InferenceApi's HTTP/2 endpoint: the same answers as REST to the bit, for a
/// .NET client and an independent Node client (grpc-js), and every failure as its gRPC status with REST's message.
/// </summary>
public sealed class GrpcProtocolTests(ServingFixture fixture)
{
    private const int Features = 16;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static InferTensor Input(int rows, int seed)
    {
        var random = new Random(seed);
        var values = Enumerable.Range(0, rows * Features).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
        return new InferTensor("input", DataType.Fp32, [rows, Features], MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
    }

    private async Task<GeneratedModel> DeployAsync(string name, ulong seed)
    {
        var model = ModelCatalog.Generate("mlp", new ModelRequest { Seed = seed });
        var version = await fixture.Client.UploadAsync(name, model.Bytes, Ct);
        await fixture.Client.ActivateAsync(name, version, Ct);
        await fixture.Client.WaitServedAsync(name, version, Input(1, 0), Ct);
        return model;
    }

    [Fact]
    public async Task NodeAndDotNetGrpcClientsGetOutputsBitIdenticalToRestBinary()
    {
        var model = await DeployAsync("grpc-parity", 41);
        var input = Input(3, 7);

        // REST, binary tensor extension both ways.
        var (status, body, response) = await fixture.Client.PostAsync("/v2/models/grpc-parity/infer", [input], TensorEncoding.Binary,
            parameters: new InferRequestParameters { BinaryDataOutput = true }, ct: Ct);
        Assert.True(status == 200, Encoding.UTF8.GetString(body));
        var rest = ServingClient.Decode(body, response)["probabilities"].Data.ToArray();

        // ONNX Runtime in this process: what the numbers must be.
        using (var session = fixture.Ort.CreateSession(model.Bytes))
        {
            using var run = session.Run([new NamedTensor("input", TensorData.From(MemoryMarshal.Cast<byte, float>(input.Data.Span).ToArray(), input.Shape))], cancellationToken: Ct);
            Assert.Equal(run["probabilities"].GetBytes().ToArray(), rest);
        }

        // .NET gRPC, raw contents and typed contents.
        using var channel = GrpcServing.Channel(fixture);
        var client = GrpcServing.Client(channel);
        var key = GrpcServing.Key(fixture);
        foreach (var raw in new[] { true, false })
        {
            var answer = await client.ModelInferAsync(GrpcInferCodec.WriteRequest("grpc-parity", null, [input], raw, id: $"dotnet-{raw}"), GrpcServing.With(key, Ct));
            var decoded = GrpcInferCodec.ReadResponse(answer);
            Assert.Equal(("grpc-parity", "1", $"dotnet-{raw}"), (decoded.ModelName, decoded.ModelVersion, decoded.Id));
            Assert.Equal([3L, 4], decoded["probabilities"].Shape);
            Assert.Equal(rest, decoded["probabilities"].Data.ToArray());
        }

        // A compressed request message, as a client with compression on sends it (grpc-encoding: gzip).
        var compressed = GrpcServing.With(key, Ct);
        compressed.Headers!.Add("grpc-internal-encoding-request", "gzip");
        var unpacked = GrpcInferCodec.ReadResponse(await client.ModelInferAsync(GrpcInferCodec.WriteRequest("grpc-parity", null, [input], raw: true), compressed));
        Assert.Equal(rest, unpacked["probabilities"].Data.ToArray());

        // Node (grpc-js + proto-loader reading the .proto file): its own checks, then the bytes.
        var node = await GrpcServing.RunNodeClientAsync(new
        {
            address = fixture.App.GetEndpoint("inference-api", "grpc").Authority,
            proto = Path.Combine(GrpcServing.RepositoryRoot(), "libs", "Platform.Inference.OpenInference", "Protos", "grpc_service.proto"),
            apiKey = key,
            model = "grpc-parity",
            id = "node-1",
            inputs = new[] { new { name = "input", datatype = "FP32", shape = input.Shape, data = Convert.ToBase64String(input.Data.Span) } },
            expectClasses = 4,
        }, Ct);
        Assert.Equal("1", node.GetProperty("model_version").GetString());
        Assert.Equal("node-1", node.GetProperty("id").GetString());
        var output = node.GetProperty("outputs")[0];
        Assert.Equal(("probabilities", "FP32"), (output.GetProperty("name").GetString(), output.GetProperty("datatype").GetString()));
        Assert.Equal(rest, Convert.FromBase64String(output.GetProperty("data").GetString()!));
        Assert.Equal((int)StatusCode.Unauthenticated, node.GetProperty("refusal").GetProperty("code").GetInt32());
    }

    [Fact]
    public async Task MetadataReadinessAndHealthOverGrpc()
    {
        await DeployAsync("grpc-meta", 42);
        using var channel = GrpcServing.Channel(fixture);
        var client = GrpcServing.Client(channel);
        var key = GrpcServing.With(GrpcServing.Key(fixture), Ct);

        // Liveness, readiness and server metadata need no key.
        Assert.True((await client.ServerLiveAsync(new ServerLiveRequest(), cancellationToken: Ct)).Live);
        Assert.True((await client.ServerReadyAsync(new ServerReadyRequest(), cancellationToken: Ct)).Ready);
        var server = await client.ServerMetadataAsync(new ServerMetadataRequest(), cancellationToken: Ct);
        Assert.Equal("platform-inference-api", server.Name);
        Assert.Equal(["binary_tensor_data", "classification", "statistics", "model_repository", "model_configuration"], server.Extensions);

        var metadata = await client.ModelMetadataAsync(new ModelMetadataRequest { Name = "grpc-meta" }, key);
        Assert.Equal(("grpc-meta", "onnxruntime_onnx"), (metadata.Name, metadata.Platform));
        Assert.Equal(["1"], metadata.Versions);
        Assert.Equal(("input", "FP32"), (metadata.Inputs[0].Name, metadata.Inputs[0].Datatype));
        Assert.Equal([-1L, 16], metadata.Inputs[0].Shape);
        var config = (await client.ModelConfigAsync(new ModelConfigRequest { Name = "grpc-meta" }, key)).Config;
        Assert.Equal(("grpc-meta", "onnxruntime_onnx", "onnxruntime", 32), (config.Name, config.Platform, config.Backend, config.MaxBatchSize));
        Assert.Equal(("input", ModelDataType.TypeFp32, 16L), (config.Input[0].Name, config.Input[0].DataType, Assert.Single(config.Input[0].Dims)));
        Assert.Equal(("probabilities", ModelDataType.TypeFp32, 4L), (config.Output[0].Name, config.Output[0].DataType, Assert.Single(config.Output[0].Dims)));
        Assert.Equal(1000UL, config.DynamicBatching.MaxQueueDelayMicroseconds);
        Assert.True((await client.ModelReadyAsync(new ModelReadyRequest { Name = "grpc-meta" }, key)).Ready);
        Assert.True((await client.ModelReadyAsync(new ModelReadyRequest { Name = "grpc-meta", Version = "1" }, key)).Ready);

        // grpc.health.v1 answers from the service's health checks.
        var health = await new Health.HealthClient(channel).CheckAsync(new HealthCheckRequest(), cancellationToken: Ct);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);

        // The gRPC endpoint is HTTP/2 only, the REST endpoint HTTP/1.1.
        using var http1 = new HttpClient();
        using var refused = await http1.GetAsync(fixture.App.GetEndpoint("inference-api", "grpc") + "v2/health/live", Ct);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        using var rest = await fixture.Client.Inference.GetAsync("/v2/health/live", Ct);
        Assert.Equal(HttpVersion.Version11, rest.Version);
    }

    [Fact]
    public async Task ServerReflectionDescribesTheInferenceService()
    {
        using var channel = GrpcServing.Channel(fixture);

        // grpc.reflection.v1, as grpcurl and Postman ask first: the services, then the file that declares the inference
        // service, with the protocol's field numbers.
        using (var call = new Grpc.Reflection.V1.ServerReflection.ServerReflectionClient(channel).ServerReflectionInfo(cancellationToken: Ct))
        {
            await call.RequestStream.WriteAsync(new Grpc.Reflection.V1.ServerReflectionRequest { ListServices = "" }, Ct);
            Assert.True(await call.ResponseStream.MoveNext(Ct));
            var services = call.ResponseStream.Current.ListServicesResponse.Service.Select(service => service.Name).ToList();
            Assert.Contains("inference.GRPCInferenceService", services);
            Assert.Contains("grpc.health.v1.Health", services);

            await call.RequestStream.WriteAsync(new Grpc.Reflection.V1.ServerReflectionRequest { FileContainingSymbol = "inference.GRPCInferenceService" }, Ct);
            Assert.True(await call.ResponseStream.MoveNext(Ct));
            var files = call.ResponseStream.Current.FileDescriptorResponse.FileDescriptorProto
                .Select(bytes => Google.Protobuf.Reflection.FileDescriptorProto.Parser.ParseFrom(bytes)).ToList();
            var declaring = Assert.Single(files, file => file.Service.Any(service => service.Name == "GRPCInferenceService"));
            Assert.Equal("inference", declaring.Package);
            Assert.Contains("ModelInfer", declaring.Service.Single(service => service.Name == "GRPCInferenceService").Method.Select(method => method.Name));
            var request = declaring.MessageType.Single(message => message.Name == "ModelInferRequest");
            Assert.Equal(7, request.Field.Single(field => field.Name == "raw_input_contents").Number);
            await call.RequestStream.CompleteAsync();
        }

        // grpc.reflection.v1alpha, for older clients.
        using (var call = new Grpc.Reflection.V1Alpha.ServerReflection.ServerReflectionClient(channel).ServerReflectionInfo(cancellationToken: Ct))
        {
            await call.RequestStream.WriteAsync(new Grpc.Reflection.V1Alpha.ServerReflectionRequest { ListServices = "" }, Ct);
            Assert.True(await call.ResponseStream.MoveNext(Ct));
            Assert.Contains("inference.GRPCInferenceService", call.ResponseStream.Current.ListServicesResponse.Service.Select(service => service.Name));
            await call.RequestStream.CompleteAsync();
        }
    }

    public static TheoryData<string, StatusCode, string> Failures => new()
    {
        { "unknown-model", StatusCode.NotFound, "unknown model 'grpc-nope' (no active version)" },
        { "unknown-version", StatusCode.NotFound, "model 'grpc-errors' has no active version 7" },
        { "bad-version", StatusCode.NotFound, "model 'grpc-errors' has no version 'x'" },
        { "no-model", StatusCode.InvalidArgument, "model_name: required" },
        { "shape", StatusCode.InvalidArgument, "input 'input': shape [1,15] does not match the model's [-1,16] (-1 = any size)" },
        { "datatype", StatusCode.InvalidArgument, "input 'input': datatype FP64 does not match the model's FP32" },
        { "raw-size", StatusCode.InvalidArgument, "input 'input': raw_input_contents[0] is 60 bytes but shape [1,16] of FP32 needs 64" },
        { "missing", StatusCode.InvalidArgument, "missing input 'input' (FP32 [-1,16]); model 'grpc-errors' expects 'input' FP32 [-1,16]" },
        { "unknown-output", StatusCode.InvalidArgument, "unknown output 'logits'; model 'grpc-errors' has outputs 'probabilities'" },
        { "overflow", StatusCode.InvalidArgument, "input 'input': element 3 (1000000) is out of the range of FP16 (±65504)" },
        { "no-key", StatusCode.Unauthenticated, "authorization: an API key is required ('Authorization: Bearer <key>' or 'x-api-key: <key>')" },
        { "bad-key", StatusCode.Unauthenticated, "authorization: the API key is not valid" },
        { "deadline", StatusCode.DeadlineExceeded, "the request's deadline passed before a model worker answered" },
    };

    [Theory]
    [MemberData(nameof(Failures))]
    public async Task EveryFailureIsItsGrpcStatusWithRestsMessage(string mistake, StatusCode code, string message)
    {
        await EnsureDeployedAsync();
        using var channel = GrpcServing.Channel(fixture);
        var client = GrpcServing.Client(channel);
        var good = Input(1, 1);
        var key = GrpcServing.Key(fixture);
        var request = mistake switch
        {
            "unknown-model" => GrpcInferCodec.WriteRequest("grpc-nope", null, [good]),
            "unknown-version" => GrpcInferCodec.WriteRequest("grpc-errors", "7", [good]),
            "bad-version" => GrpcInferCodec.WriteRequest("grpc-errors", "x", [good]),
            "no-model" => GrpcInferCodec.WriteRequest("", null, [good]),
            "shape" => GrpcInferCodec.WriteRequest("grpc-errors", null, [good with { Shape = [1, 15], Data = good.Data[..60] }]),
            "datatype" => GrpcInferCodec.WriteRequest("grpc-errors", null, [good with { DataType = DataType.Fp64, Data = new byte[128] }]),
            "raw-size" => GrpcInferCodec.WriteRequest("grpc-errors", null, [good with { Data = good.Data[..60] }]),
            "missing" => GrpcInferCodec.WriteRequest("grpc-errors", null, []),
            "unknown-output" => GrpcInferCodec.WriteRequest("grpc-errors", null, [good], outputs: ["logits"]),
            "overflow" => Fp16Overflow(),
            "deadline" => GrpcInferCodec.WriteRequest("grpc-errors", null, [good], parameters: new InferRequestParameters { TimeoutMicroseconds = 1 }),
            _ => GrpcInferCodec.WriteRequest("grpc-errors", null, [good]),
        };
        var presented = mistake switch { "no-key" => null, "bad-key" => "pk_0123456789ab_" + new string('A', 43), _ => key };

        var error = await GrpcServing.FailsAsync(client.ModelInferAsync(request, GrpcServing.With(presented, Ct)));

        Assert.Equal(code, error.StatusCode);
        Assert.Equal(message, error.Status.Detail);
        if (code == StatusCode.Unauthenticated)
        {
            Assert.StartsWith("Bearer realm=\"inference-api\"", error.Trailers.GetValue("www-authenticate"), StringComparison.Ordinal);
        }

        // Bad input is never UNKNOWN or INTERNAL.
        Assert.DoesNotContain(error.StatusCode, new[] { StatusCode.Unknown, StatusCode.Internal });
    }

    private static ModelInferRequest Fp16Overflow()
    {
        // A typed FP32 value that FP16 cannot hold: refused naming the element, like REST JSON (checked before the
        // model's datatype, since it is the request that contradicts itself).
        var request = new ModelInferRequest { ModelName = "grpc-errors" };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor
        {
            Name = "input",
            Datatype = "FP16",
            Shape = { 1, 4 },
            Contents = new InferTensorContents { Fp32Contents = { 1, 2, 3, 1e6f } },
        });
        return request;
    }

    private Task EnsureDeployedAsync() => fixture.DeployOnceAsync("grpc-errors", () => DeployAsync("grpc-errors", 43), Ct);
}
