using Google.Protobuf;
using Platform.Inference.OpenInference;
using Platform.Inference.OpenInference.Grpc;
using Platform.Inference.Protocol;
using static Platform.OpenInference.Tests.CodecTests;

namespace Platform.OpenInference.Tests;

/// <summary>The gRPC form of the protocol: raw and typed contents decode to the same tensors as REST, with the same checks.</summary>
public sealed class GrpcCodecTests
{
    [Theory]
    [MemberData(nameof(CodecTests.EveryDatatype), MemberType = typeof(CodecTests))]
    public void RawAndTypedContentsOfEveryDatatypeDecodeToTheSameBytes(string datatype, string json, byte[] expected)
    {
        _ = json;
        Assert.True(DataTypes.TryParse(datatype, out var type));
        var tensor = new InferTensor("x", type, [2, 2], expected);
        var raw = GrpcInferCodec.ReadRequest(Parse(GrpcInferCodec.WriteRequest("m", null, [tensor], raw: true)));
        var typed = GrpcInferCodec.ReadRequest(Parse(GrpcInferCodec.WriteRequest("m", null, [tensor], raw: false)));
        Assert.Equal(expected, raw.Inputs[0].Data.ToArray());
        Assert.Equal(expected, typed.Inputs[0].Data.ToArray());
        Assert.Equal([2L, 2], typed.Inputs[0].Shape);
    }

    [Fact]
    public void RequestFieldsAndParametersAreRead()
    {
        var tensor = new InferTensor("x", DataType.Fp32, [1, 2], Le<float>([1, 2]));
        var message = GrpcInferCodec.WriteRequest("m", "3", [tensor], outputs: ["y", "z"],
            parameters: new InferRequestParameters { Cache = false, TimeoutMicroseconds = 2500, EntityId = "user-9" }, id: "req-1");
        message.Parameters["vendor_thing"] = new InferParameter { DoubleParam = 1.5 };
        var request = GrpcInferCodec.ReadRequest(Parse(message));
        Assert.Equal("req-1", request.Id);
        Assert.Equal(["y", "z"], request.Outputs.Select(o => o.Name));
        Assert.Equal(new InferRequestParameters { Cache = false, TimeoutMicroseconds = 2500, EntityId = "user-9" }, request.Parameters);
    }

    [Fact]
    public void ResponsesCarryRawOutputContentsThatReadBackIdentically()
    {
        var outputs = new InferTensor[]
        {
            new("p", DataType.Fp32, [2, 2], Le<float>([0.25f, 0.75f, float.Epsilon, -0f])),
            new("s", DataType.Bytes, [2], Bytes("é", "")),
        };
        var message = GrpcInferCodec.WriteResponse(new InferResponse("m", "4", "id-7", outputs));
        Assert.Equal(2, message.RawOutputContents.Count);
        var read = GrpcInferCodec.ReadResponse(ModelInferResponse.Parser.ParseFrom(message.ToByteArray()));
        Assert.Equal(("m", "4", "id-7"), (read.ModelName, read.ModelVersion, read.Id));
        Assert.Equal(outputs[0].Data.ToArray(), read["p"].Data.ToArray());
        Assert.Equal(outputs[1].Data.ToArray(), read["s"].Data.ToArray());
        Assert.Equal("BYTES", message.Outputs[1].Datatype);
    }

    public static TheoryData<Func<ModelInferRequest>, string> Errors => new()
    {
        { () => Request(("", "FP32", [1], Raw(4))), "inputs[0] has no name" },
        { () => Request(("x", "", [1], Raw(4))), "input 'x' has no datatype" },
        { () => Request(("x", "FLOAT", [1], Raw(4))), "input 'x': unknown datatype 'FLOAT' (expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES, BF16)" },
        { () => Request(("x", "FP32", [-1], Raw(4))), "input 'x': shape [-1] has a negative dimension" },
        { () => Request(("x", "FP32", [2], Raw(4))), "input 'x': raw_input_contents[0] is 4 bytes but shape [2] of FP32 needs 8" },
        { () => Request(("x", "FP32", [1], Raw(4)), ("x", "FP32", [1], Raw(4))), "input 'x' appears more than once" },
        { () => Request(("x", "BYTES", [2], Bytes("a"))), "input 'x': shape [2] needs 2 elements but the binary data holds 1" },
        { () => Request(("x", "BYTES", [2], Raw(5))), "input 'x': BYTES element 1 has a truncated 4-byte length prefix" },
        { () => WithRawCount(Request(("x", "FP32", [1], Raw(4)), ("y", "FP32", [1], Raw(4))), 1), "raw_input_contents has 1 entries but the request has 2 inputs (one entry per input, in order)" },
        { () => Typed("FP32", new InferTensorContents { Fp64Contents = { 1.0 } }, 1), "input 'x': contents.fp64_contents does not match datatype FP32 (its elements go in contents.fp32_contents)" },
        { () => Typed("INT64", new InferTensorContents { Int64Contents = { 1, 2, 3 } }, 2), "input 'x': shape [2] needs 2 elements but contents.int64_contents has 3" },
        { () => Typed("FP32", new InferTensorContents(), 2), "input 'x' has neither contents nor raw_input_contents" },
        { () => WithContents(Request(("x", "FP32", [1], Raw(4))), new InferTensorContents { Fp32Contents = { 1 } }), "input 'x' has contents, but the request uses raw_input_contents (it is one or the other for all inputs)" },
        { () => WithOutputs(Request(("x", "FP32", [1], Raw(4))), "y", "y"), "output 'y' is requested more than once" },
        { () => WithOutputParameter(Request(("x", "FP32", [1], Raw(4))), "classification", new InferParameter { StringParam = "3" }), "outputs[0]: parameters.classification must be a positive int64_param (the number of classes)" },
        { () => WithOutputParameter(Request(("x", "FP32", [1], Raw(4))), "classification", new InferParameter { Int64Param = 0 }), "outputs[0]: parameters.classification must be a positive int64_param (the number of classes)" },
        { () => WithInputParameter(Request(("x", "FP32", [1], null)), "shared_memory_region", new InferParameter { StringParam = "r0" }), "input 'x': parameters.shared_memory_region is not supported (Triton's shared-memory extensions); send the tensor's data in the request" },
        { () => WithParameter(Request(), "cache", new InferParameter { StringParam = "yes" }), "parameters.cache must be a bool_param" },
        { () => WithParameter(Request(), "timeout", new InferParameter { Int64Param = -1 }), "parameters.timeout must be a positive int64_param (microseconds)" },
        { () => WithParameter(Request(), "entity_id", new InferParameter { Int64Param = 4 }), "parameters.entity_id must be a non-empty string_param (the entity whose features fill bound inputs)" },
    };

    [Theory]
    [MemberData(nameof(Errors))]
    public void ErrorsNameTheTensorOrFieldLikeRest(Func<ModelInferRequest> request, string expected) =>
        Assert.Equal(expected, Assert.Throws<InferenceRequestException>(() => GrpcInferCodec.ReadRequest(request())).Message);

    [Fact]
    public void AnEmptyTensorNeedsNoContents()
    {
        var request = Request(("x", "FP32", [0, 4], null));
        Assert.Equal(0, Assert.Single(GrpcInferCodec.ReadRequest(request).Inputs).Data.Length);
    }

    private static ModelInferRequest Parse(ModelInferRequest message) => ModelInferRequest.Parser.ParseFrom(message.ToByteArray());

    private static byte[] Raw(int bytes) => new byte[bytes];

    private static ModelInferRequest Request(params (string Name, string Datatype, long[] Shape, byte[]? Raw)[] inputs)
    {
        var request = new ModelInferRequest { ModelName = "m" };
        foreach (var (name, datatype, shape, raw) in inputs)
        {
            request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = datatype, Shape = { shape } });
            if (raw is not null)
            {
                request.RawInputContents.Add(ByteString.CopyFrom(raw));
            }
        }

        return request;
    }

    private static ModelInferRequest Typed(string datatype, InferTensorContents contents, long count)
    {
        var request = new ModelInferRequest { ModelName = "m" };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "x", Datatype = datatype, Shape = { count }, Contents = contents });
        return request;
    }

    private static ModelInferRequest WithRawCount(ModelInferRequest request, int count)
    {
        while (request.RawInputContents.Count > count)
        {
            request.RawInputContents.RemoveAt(request.RawInputContents.Count - 1);
        }

        return request;
    }

    private static ModelInferRequest WithContents(ModelInferRequest request, InferTensorContents contents)
    {
        request.Inputs[0].Contents = contents;
        return request;
    }

    private static ModelInferRequest WithOutputs(ModelInferRequest request, params string[] names)
    {
        request.Outputs.Add(names.Select(n => new ModelInferRequest.Types.InferRequestedOutputTensor { Name = n }));
        return request;
    }

    private static ModelInferRequest WithOutputParameter(ModelInferRequest request, string name, InferParameter value)
    {
        var output = new ModelInferRequest.Types.InferRequestedOutputTensor { Name = "p" };
        output.Parameters[name] = value;
        request.Outputs.Add(output);
        return request;
    }

    private static ModelInferRequest WithInputParameter(ModelInferRequest request, string name, InferParameter value)
    {
        request.Inputs[0].Parameters[name] = value;
        return request;
    }

    private static ModelInferRequest WithParameter(ModelInferRequest request, string name, InferParameter value)
    {
        request.Parameters[name] = value;
        return request;
    }
}
