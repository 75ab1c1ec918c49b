using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Platform.Inference.OpenInference;
using Platform.Inference.Protocol;

namespace Platform.OpenInference.Tests;

public sealed class CodecTests
{
    private static InferRequest Parse(string json) => InferRequestReader.Read(Encoding.UTF8.GetBytes(json));

    private static string Error(string json, int? headerLength = null) =>
        Assert.Throws<InferenceRequestException>(() => InferRequestReader.Read(Encoding.UTF8.GetBytes(json), headerLength)).Message;

    // One value list per datatype: the JSON literal and the little-endian bytes it must become.
    public static TheoryData<string, string, byte[]> EveryDatatype => new()
    {
        { "BOOL", "[true, false, true, false]", [1, 0, 1, 0] },
        { "UINT8", "[0, 255, 7, 1]", [0, 255, 7, 1] },
        { "UINT16", "[0, 65535, 1, 2]", Le<ushort>([0, 65535, 1, 2]) },
        { "UINT32", "[0, 4294967295, 1, 2]", Le<uint>([0, 4294967295, 1, 2]) },
        { "UINT64", "[0, 18446744073709551615, 1, 2]", Le<ulong>([0, ulong.MaxValue, 1, 2]) },
        { "INT8", "[-128, 127, 0, -1]", [0x80, 0x7F, 0, 0xFF] },
        { "INT16", "[-32768, 32767, 0, -1]", Le<short>([-32768, 32767, 0, -1]) },
        { "INT32", "[-2147483648, 2147483647, 0, -1]", Le<int>([int.MinValue, int.MaxValue, 0, -1]) },
        { "INT64", "[-9223372036854775808, 9223372036854775807, 0, -1]", Le<long>([long.MinValue, long.MaxValue, 0, -1]) },
        { "FP16", "[1.5, -2, 65504, 0.333251953125]", Le<Half>([(Half)1.5, (Half)(-2), Half.MaxValue, (Half)0.333251953125]) },
        { "FP32", "[0.1, -3.4028235E+38, 1E-45, \"NaN\"]", Le<float>([0.1f, float.MinValue, float.Epsilon, float.NaN]) },
        { "FP64", "[0.1, 1.7976931348623157E+308, -5E-324, \"-Infinity\"]", Le<double>([0.1, double.MaxValue, -double.Epsilon, double.NegativeInfinity]) },
        { "BYTES", "[\"a\", \"\", \"h\\u00e9\", \"xyz\"]", Bytes("a", "", "hé", "xyz") },
        { "BF16", "[1.5, -2, 3.3895314E+38, \"NaN\"]", Le<ushort>([0x3FC0, 0xC000, 0x7F7F, (ushort)(BitConverter.SingleToUInt32Bits(float.NaN) >> 16)]) },
    };

    [Theory]
    [MemberData(nameof(EveryDatatype))]
    public void FlatJsonBecomesLittleEndianBytes(string datatype, string data, byte[] expected)
    {
        var request = Parse($$"""{"inputs":[{"name":"x","datatype":"{{datatype}}","shape":[2,2],"data":{{data}}}]}""");
        var input = Assert.Single(request.Inputs);
        Assert.Equal(expected, input.Data.ToArray());
        Assert.Equal([2L, 2], input.Shape);
        Assert.Equal(datatype, input.DataType.ToProtocolName());
    }

    [Theory]
    [MemberData(nameof(EveryDatatype))]
    public void NestedJsonEqualsFlat(string datatype, string data, byte[] expected)
    {
        // [a, b, c, d] -> [[a, b], [c, d]]
        var items = SplitTopLevel(data);
        var nested = $"[[{items[0]},{items[1]}],[{items[2]},{items[3]}]]";
        var request = Parse($$"""{"inputs":[{"name":"x","datatype":"{{datatype}}","shape":[2,2],"data":{{nested}}}]}""");
        Assert.Equal(expected, request.Inputs[0].Data.ToArray());
    }

    [Theory]
    [MemberData(nameof(EveryDatatype))]
    public void EveryDatatypeRoundTripsThroughJsonAndBinaryResponses(string datatype, string data, byte[] expected)
    {
        _ = data;
        Assert.True(DataTypes.TryParse(datatype, out var type));
        var tensor = new InferTensor("out", type, [2, 2], expected);
        foreach (var binary in new[] { false, true })
        {
            var buffer = new ArrayBufferWriter<byte>();
            var jsonLength = InferResponseWriter.Write(buffer, new InferResponse("m", "3", "req-1", [tensor]), [binary]);
            Assert.Equal(binary, jsonLength < buffer.WrittenCount);
            var response = InferClientCodec.ReadResponse(buffer.WrittenMemory, binary ? jsonLength : null);
            Assert.Equal(("m", "3", "req-1"), (response.ModelName, response.ModelVersion, response.Id));
            Assert.Equal(expected, response["out"].Data.ToArray());
            Assert.Equal([2L, 2], response["out"].Shape);
        }
    }

    [Theory]
    [InlineData(TensorEncoding.JsonFlat)]
    [InlineData(TensorEncoding.JsonNested)]
    [InlineData(TensorEncoding.Binary)]
    public void ClientRequestsDecodeToTheSameTensors(TensorEncoding encoding)
    {
        var floats = new InferTensor("f", DataType.Fp32, [2, 3], Le<float>([1.1f, 2.2f, -3.3f, 4e-7f, 5, 6]));
        var strings = new InferTensor("s", DataType.Bytes, [2], Bytes("one", "two"));
        var buffer = new ArrayBufferWriter<byte>();
        var jsonLength = InferClientCodec.WriteRequest(buffer, [floats, strings], encoding,
            [new RequestedOutput("y", true)], new InferRequestParameters { Cache = true, BinaryDataOutput = true, TimeoutMicroseconds = 5000, EntityId = "u-42:eu" }, id: "abc");
        var request = InferRequestReader.Read(buffer.WrittenMemory, encoding == TensorEncoding.Binary ? jsonLength : null);
        Assert.Equal("abc", request.Id);
        Assert.Equal(floats.Data.ToArray(), request.Inputs[0].Data.ToArray());
        Assert.Equal(strings.Data.ToArray(), request.Inputs[1].Data.ToArray());
        Assert.Equal(new RequestedOutput("y", true), Assert.Single(request.Outputs));
        Assert.Equal(new InferRequestParameters { Cache = true, BinaryDataOutput = true, TimeoutMicroseconds = 5000, EntityId = "u-42:eu" }, request.Parameters);
    }

    [Fact]
    public void EntityIdIsReadAndOtherParametersAreIgnored()
    {
        var request = InferRequestReader.Read(Encoding.UTF8.GetBytes(
            """{"inputs":[],"parameters":{"vendor_thing":{"a":[1,2]},"entity_id":"customer-7","cache":false}}"""));
        Assert.Equal(new InferRequestParameters { EntityId = "customer-7", Cache = false }, request.Parameters);
        Assert.Null(InferRequestReader.Read(Encoding.UTF8.GetBytes("""{"inputs":[]}""")).Parameters.EntityId);
    }

    [Fact]
    public void BinaryInputsAreSlicesOfTheBodyInOrder()
    {
        const string header = """{"inputs":[{"name":"a","datatype":"UINT32","shape":[2,2],"parameters":{"binary_data_size":16}},{"name":"b","datatype":"BOOL","shape":[3],"parameters":{"binary_data_size":3}}],"outputs":[{"name":"o","parameters":{"binary_data":true}}]}""";
        var json = Encoding.UTF8.GetBytes(header);
        var body = json.Concat(Le<uint>([1, 2, 3, 4])).Concat(new byte[] { 1, 0, 1 }).ToArray();
        var request = InferRequestReader.Read(body, json.Length);
        Assert.Equal(Le<uint>([1, 2, 3, 4]), request.Inputs[0].Data.ToArray());
        Assert.Equal(new byte[] { 1, 0, 1 }, request.Inputs[1].Data.ToArray());
        Assert.True(InferResponseWriter.IsBinary(request, "o"));
        Assert.False(InferResponseWriter.IsBinary(request, "other"));
    }

    [Fact]
    public void OutputBinaryFlagOverridesTheRequestWideOne()
    {
        var request = Parse("""{"inputs":[],"outputs":[{"name":"a","parameters":{"binary_data":false}},{"name":"b"}],"parameters":{"binary_data_output":true}}""");
        Assert.False(InferResponseWriter.IsBinary(request, "a"));
        Assert.True(InferResponseWriter.IsBinary(request, "b"));
    }

    [Fact]
    public void DataMayComeBeforeDatatypeAndShapeAndUnknownFieldsAreIgnored()
    {
        var request = Parse("""{"extra":{"x":[1,2]},"inputs":[{"data":[[1,2],[3,4]],"name":"x","parameters":{"other":"y"},"shape":[2,2],"datatype":"INT32"}],"id":"7"}""");
        Assert.Equal(Le<int>([1, 2, 3, 4]), request.Inputs[0].Data.ToArray());
        Assert.Equal("7", request.Id);
    }

    [Fact]
    public void Fp32JsonRoundTripsBitForBit()
    {
        var random = new Random(42);
        var values = Enumerable.Range(0, 1000).Select(_ => BitConverter.Int32BitsToSingle(random.Next())).Where(float.IsFinite).ToArray();
        var tensor = new InferTensor("x", DataType.Fp32, [values.Length], Le<float>(values));
        var buffer = new ArrayBufferWriter<byte>();
        InferClientCodec.WriteRequest(buffer, [tensor], TensorEncoding.JsonFlat);
        Assert.Equal(tensor.Data.ToArray(), InferRequestReader.Read(buffer.WrittenMemory).Inputs[0].Data.ToArray());
    }

    public static TheoryData<string, int?, string> Errors => new()
    {
        { """{"inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[1,2,3]}]}""", null, "input 'x': shape [2,2] needs 4 elements but 'data' has 3" },
        { """{"inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[1,2,3,4,5]}]}""", null, "input 'x': shape [2,2] needs 4 elements but 'data' has 5" },
        { """{"inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[[1,2,3],[4]]}]}""", null, "input 'x': nested 'data' does not match the shape [2,2]: dimension 1 has 3 items, expected 2" },
        { """{"inputs":[{"name":"x","datatype":"FP32","shape":[4],"data":[[1,2],[3,4]]}]}""", null, "input 'x': nested 'data' is deeper than the shape [4]" },
        { """{"inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[1,[2,3],4]}]}""", null, "input 'x': 'data' mixes values and arrays; use a flat array or arrays nested like the shape [2,2]" },
        { """{"inputs":[{"name":"x","datatype":"FP8","shape":[1],"data":[1]}]}""", null, "input 'x': unknown datatype 'FP8' (expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES, BF16)" },
        { """{"inputs":[{"name":"x","datatype":"UINT8","shape":[1],"data":[256]}]}""", null, "input 'x': element 0 (256) is out of the range of UINT8 (0 to 255)" },
        { """{"inputs":[{"name":"x","datatype":"INT32","shape":[2],"data":[1,1.5]}]}""", null, "input 'x': element 1 (1.5) is not a valid INT32" },
        { """{"inputs":[{"name":"x","datatype":"BOOL","shape":[1],"data":[1]}]}""", null, "input 'x': element 0 (1) is not a valid BOOL" },
        { """{"inputs":[{"name":"x","datatype":"FP16","shape":[1],"data":[70000]}]}""", null, "input 'x': element 0 (70000) is out of the range of FP16 (±65504)" },
        { """{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":["a"]}]}""", null, "input 'x': element 0 (\"a\") is not a valid FP32" },
        { """{"inputs":[{"name":"x","datatype":"BYTES","shape":[1],"data":[3]}]}""", null, "input 'x': element 0 (3) is not a string (BYTES elements are JSON strings)" },
        { """{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":1}]}""", null, "input 'x': 'data' must be an array" },
        { """{"inputs":[{"name":"x","datatype":"FP32","shape":[-1],"data":[1]}]}""", null, "input 'x': 'shape' must be an array of non-negative integers" },
        { """{"inputs":[{"name":"x","datatype":"FP32","data":[1]}]}""", null, "input 'x' has no 'shape'" },
        { """{"inputs":[{"name":"x","shape":[1],"data":[1]}]}""", null, "input 'x' has no 'datatype'" },
        { """{"inputs":[{"datatype":"FP32","shape":[1],"data":[1]}]}""", null, "inputs[0] has no 'name'" },
        { """{"inputs":[{"name":"x","datatype":"FP32","shape":[1]}]}""", null, "input 'x' has neither 'data' nor parameters.binary_data_size" },
        { """{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]},{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}""", null, "input 'x' appears more than once" },
        { """{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"parameters":{"binary_data_size":4}}]}""", null, "input 'x': parameters.binary_data_size needs the Inference-Header-Content-Length header" },
        { """{"inputs":[],"outputs":[{"name":"p","parameters":{"classification":0}}]}""", null, "outputs[0]: parameters.classification must be a positive integer (the number of classes)" },
        { """{"inputs":[],"outputs":[{"name":"p","parameters":{"classification":"3"}}]}""", null, "outputs[0]: parameters.classification must be a positive integer (the number of classes)" },
        { """{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"parameters":{"shared_memory_region":"r0","shared_memory_byte_size":4}}]}""", null, "input 'x': parameters.shared_memory_region is not supported (Triton's shared-memory extensions); send the tensor's data in the request" },
        { """{"inputs":[],"outputs":[{"name":"p","parameters":{"shared_memory_region":"r1"}}]}""", null, "outputs[0]: parameters.shared_memory_region is not supported (Triton's shared-memory extensions); send the tensor's data in the request" },
        { """{"outputs":[]}""", null, "the request has no 'inputs'" },
        { """[1]""", null, "the request must be a JSON object" },
        { """{"inputs":[],"outputs":[{"name":"a"},{"name":"a"}]}""", null, "output 'a' is requested more than once" },
        { """{"inputs":[],"parameters":{"cache":"yes"}}""", null, "parameters.cache must be true or false" },
        { """{"inputs":[],"parameters":{"binary_data_output":1}}""", null, "parameters.binary_data_output must be true or false" },
        { """{"inputs":[],"parameters":{"timeout":-5}}""", null, "parameters.timeout must be a positive integer (microseconds)" },
        { """{"inputs":[],"parameters":{"entity_id":42}}""", null, "parameters.entity_id must be a non-empty string (the entity whose features fill bound inputs)" },
        { """{"inputs":[],"parameters":{"entity_id":""}}""", null, "parameters.entity_id must be a non-empty string (the entity whose features fill bound inputs)" },
        { """{"inputs":[],"parameters":{"entity_id":null}}""", null, "parameters.entity_id must be a non-empty string (the entity whose features fill bound inputs)" },
        { "{\"inputs\":[{\"name\":\"x\",\n \"shape\" [1]}]}", null, "malformed JSON at line 2, byte 10: '[' is invalid after a property name. Expected a ':'." },
        { "{\"inputs\":[", null, "malformed JSON at line 1, byte 12: Expected depth to be zero at the end of the JSON payload. There is an open JSON object or array that should be closed." },
    };

    [Theory]
    [MemberData(nameof(Errors))]
    public void ErrorsNameTheInputAndTheProblem(string json, int? headerLength, string expected) =>
        Assert.Equal(expected, Error(json, headerLength));

    [Fact]
    public void BinaryErrors()
    {
        static string Run(string header, byte[] tail, int? headerLength = -1)
        {
            var json = Encoding.UTF8.GetBytes(header);
            var length = headerLength == -1 ? json.Length : headerLength;
            return Assert.Throws<InferenceRequestException>(() => InferRequestReader.Read(json.Concat(tail).ToArray(), length)).Message;
        }

        const string fp32 = """{"inputs":[{"name":"x","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":SIZE}}]}""";
        Assert.Equal("input 'x': binary_data_size is 4 bytes but shape [2] of FP32 needs 8", Run(fp32.Replace("SIZE", "4"), new byte[4]));
        Assert.Equal("input 'x': binary_data_size 8 runs past the end of the body (4 bytes of binary data left)", Run(fp32.Replace("SIZE", "8"), new byte[4]));
        Assert.Equal("the body has 4 bytes after the JSON header that no input's binary_data_size accounts for", Run(fp32.Replace("SIZE", "8"), new byte[12]));
        const string bytes = """{"inputs":[{"name":"s","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":SIZE}}]}""";
        Assert.Equal("input 's': shape [2] needs 2 elements but the binary data holds 1", Run(bytes.Replace("SIZE", "5"), Bytes("a")));
        Assert.Equal("input 's': BYTES element 0 declares 9 bytes but only 1 remain", Run(bytes.Replace("SIZE", "5"), [9, 0, 0, 0, 65]));
        Assert.Equal("input 's': BYTES element 0 has a truncated 4-byte length prefix", Run(bytes.Replace("SIZE", "2"), [1, 0]));
        Assert.Equal("Inference-Header-Content-Length '12x' must be an integer between 0 and the body length (100)",
            Assert.Throws<InferenceRequestException>(() => InferRequestReader.ParseHeaderContentLength("12x", 100)).Message);
        Assert.Equal("Inference-Header-Content-Length '101' must be an integer between 0 and the body length (100)",
            Assert.Throws<InferenceRequestException>(() => InferRequestReader.ParseHeaderContentLength("101", 100)).Message);
        Assert.Null(InferRequestReader.ParseHeaderContentLength(null, 100));
    }

    [Fact]
    public void AHugeShapeWithLittleDataFailsWithoutAllocating()
    {
        Assert.Equal("input 'x': shape [100000,1000] needs 100000000 elements but 'data' has 2",
            Error("""{"inputs":[{"name":"x","datatype":"FP32","shape":[100000,1000],"data":[1,2]}]}"""));
    }

    [Fact]
    public void ShapeOverflowIsAClientError() =>
        Assert.Equal("input 'x': shape [9223372036854775807,2] is too large",
            Error("""{"inputs":[{"name":"x","datatype":"FP32","shape":[9223372036854775807,2],"data":[1]}]}"""));

    internal static byte[] Le<T>(T[] values) where T : unmanaged
    {
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        Assert.True(BitConverter.IsLittleEndian);
        return bytes;
    }

    internal static byte[] Bytes(params string[] values)
    {
        var result = new List<byte>();
        foreach (var value in values)
        {
            var utf8 = Encoding.UTF8.GetBytes(value);
            var length = new byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(length, utf8.Length);
            result.AddRange(length);
            result.AddRange(utf8);
        }

        return [.. result];
    }

    private static string[] SplitTopLevel(string array)
    {
        // The literals above contain no commas inside strings.
        return array.Trim()[1..^1].Split(',').Select(s => s.Trim()).ToArray();
    }
}
