using System.Text;
using Google.Protobuf;
using Platform.Inference.OpenInference;
using Platform.Inference.OpenInference.Grpc;
using Platform.Inference.Protocol;

namespace Platform.OpenInference.Tests;

/// <summary>
/// Strict numeric input: every element is checked against its datatype's range, over REST JSON and gRPC typed contents
/// alike, and a value out of range is refused naming the tensor and the element. NaN and the infinities are values of
/// the float types and pass; a finite number too large for its float type is refused (it would become infinity); one
/// too small rounds to zero.
/// </summary>
public sealed class NumericRangeTests
{
    // datatype, the smallest and largest values it holds, and the first values beyond them (JSON literals).
    public static TheoryData<string, string, string, string, string> Edges => new()
    {
        { "UINT8", "0", "255", "-1", "256" },
        { "UINT16", "0", "65535", "-1", "65536" },
        { "UINT32", "0", "4294967295", "-1", "4294967296" },
        { "UINT64", "0", "18446744073709551615", "-1", "18446744073709551616" },
        { "INT8", "-128", "127", "-129", "128" },
        { "INT16", "-32768", "32767", "-32769", "32768" },
        { "INT32", "-2147483648", "2147483647", "-2147483649", "2147483648" },
        { "INT64", "-9223372036854775808", "9223372036854775807", "-9223372036854775809", "9223372036854775808" },
        { "FP16", "-65504", "65504", "-65520", "65520" },
        { "BF16", "-3.3895313892515355E+38", "3.3895313892515355E+38", "-3.3961775292304e+38", "3.3961775292304e+38" },
        { "FP32", "-3.4028234663852886E+38", "3.4028234663852886E+38", "-3.4028236692093846E+38", "3.4028236692093846E+38" },
        { "FP64", "-1.7976931348623157E+308", "1.7976931348623157E+308", "-1.8E+308", "1.8E+308" },
    };

    [Theory]
    [MemberData(nameof(Edges))]
    public void JsonValuesAtTheEdgesPassAndOneStepBeyondIsRefusedNamingTheElement(string datatype, string min, string max, string below, string above)
    {
        var accepted = Read(datatype, $"[{min}, 0, {max}]");
        Assert.True(DataTypes.TryParse(datatype, out var type));
        Assert.Equal(3 * type.ElementSize(), accepted.Data.Length);

        foreach (var (value, index) in new[] { (below, 1), (above, 2) })
        {
            var error = Assert.Throws<InferenceRequestException>(() => Read(datatype, index == 1 ? $"[0, {value}, 0]" : $"[0, 0, {value}]"));
            Assert.StartsWith($"input 'x': element {index} ({value}) is out of the range of {datatype} (", error.Message, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("FP16")]
    [InlineData("BF16")]
    [InlineData("FP32")]
    [InlineData("FP64")]
    public void NaNAndInfinitiesPassAndTinyValuesRoundToZero(string datatype)
    {
        var tensor = Read(datatype, """["NaN", "Infinity", "-Infinity", 1e-400]""");
        var values = Floats(tensor);
        Assert.True(double.IsNaN(values[0]));
        Assert.Equal(double.PositiveInfinity, values[1]);
        Assert.Equal(double.NegativeInfinity, values[2]);
        Assert.Equal(0, values[3]);
    }

    [Theory]
    [InlineData("INT32", "1.5", "is not a valid INT32")]
    [InlineData("UINT8", "1e2", "is not a valid UINT8")]
    [InlineData("INT64", "\"7\"", "is not a valid INT64")]
    [InlineData("FP32", "true", "is not a valid FP32")]
    [InlineData("BOOL", "1", "is not a valid BOOL")]
    public void ValuesOfAnotherKindAreNotValidRatherThanOutOfRange(string datatype, string value, string expected)
    {
        var error = Assert.Throws<InferenceRequestException>(() => Read(datatype, $"[{value}]"));
        Assert.Equal($"input 'x': element 0 ({value}) {expected}", error.Message);
    }

    public static TheoryData<string, Action<InferTensorContents>, string> TypedOutOfRange => new()
    {
        { "UINT8", c => c.UintContents.Add([0, 256]), "element 1 (256) is out of the range of UINT8 (0 to 255)" },
        { "UINT16", c => c.UintContents.Add([65536, 0]), "element 0 (65536) is out of the range of UINT16 (0 to 65535)" },
        { "INT8", c => c.IntContents.Add([-129, 0]), "element 0 (-129) is out of the range of INT8 (-128 to 127)" },
        { "INT16", c => c.IntContents.Add([0, 32768]), "element 1 (32768) is out of the range of INT16 (-32768 to 32767)" },
        { "FP16", c => c.Fp32Contents.Add([0, 65520f]), "element 1 (65520) is out of the range of FP16 (±65504)" },
        { "BF16", c => c.Fp32Contents.Add([float.MaxValue, 0]), "element 0 (3.4028235E+38) is out of the range of BF16 (±3.3895314E+38)" },
    };

    [Theory]
    [MemberData(nameof(TypedOutOfRange))]
    public void GrpcTypedContentsOutOfRangeAreRefusedNamingTheElement(string datatype, Action<InferTensorContents> fill, string expected)
    {
        var contents = new InferTensorContents();
        fill(contents);
        var error = Assert.Throws<InferenceRequestException>(() => GrpcInferCodec.ReadRequest(Typed(datatype, contents, 2)));
        Assert.Equal($"input 'x': {expected}", error.Message);
    }

    public static TheoryData<string, Action<InferTensorContents>> TypedAtTheEdges => new()
    {
        { "UINT8", c => c.UintContents.Add([0, 255]) },
        { "UINT16", c => c.UintContents.Add([0, 65535]) },
        { "UINT32", c => c.UintContents.Add([0, uint.MaxValue]) },
        { "UINT64", c => c.Uint64Contents.Add([0, ulong.MaxValue]) },
        { "INT8", c => c.IntContents.Add([-128, 127]) },
        { "INT16", c => c.IntContents.Add([-32768, 32767]) },
        { "INT32", c => c.IntContents.Add([int.MinValue, int.MaxValue]) },
        { "INT64", c => c.Int64Contents.Add([long.MinValue, long.MaxValue]) },
        { "FP16", c => c.Fp32Contents.Add([-65504f, float.NaN]) },
        { "BF16", c => c.Fp32Contents.Add([-3.3895314E+38f, float.PositiveInfinity]) },
        { "FP32", c => c.Fp32Contents.Add([float.MinValue, float.NaN]) },
        { "FP64", c => c.Fp64Contents.Add([double.MaxValue, double.NegativeInfinity]) },
        { "BOOL", c => c.BoolContents.Add([true, false]) },
    };

    [Theory]
    [MemberData(nameof(TypedAtTheEdges))]
    public void GrpcTypedContentsAtTheEdgesPassAndEqualTheSameValuesInJson(string datatype, Action<InferTensorContents> fill)
    {
        var contents = new InferTensorContents();
        fill(contents);
        var typed = Assert.Single(GrpcInferCodec.ReadRequest(Typed(datatype, contents, 2)).Inputs);

        // Written back as JSON and read again: the same bytes, so both transports agree on every edge value.
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        InferClientCodec.WriteRequest(buffer, [typed], TensorEncoding.JsonFlat);
        Assert.Equal(typed.Data.ToArray(), InferRequestReader.Read(buffer.WrittenMemory).Inputs[0].Data.ToArray());
    }

    [Fact]
    public void RawBoolBytesOtherThanZeroOrOneAreRefusedOnEveryTransport()
    {
        var header = Encoding.UTF8.GetBytes("""{"inputs":[{"name":"b","datatype":"BOOL","shape":[3],"parameters":{"binary_data_size":3}}]}""");
        var rest = Assert.Throws<InferenceRequestException>(() => InferRequestReader.Read(header.Concat(new byte[] { 1, 0, 2 }).ToArray(), header.Length));
        Assert.Equal("input 'b': element 2 is 2, out of the range of BOOL (0 or 1)", rest.Message);

        var request = new ModelInferRequest { ModelName = "m" };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "b", Datatype = "BOOL", Shape = { 3 } });
        request.RawInputContents.Add(ByteString.CopyFrom(7, 0, 1));
        var grpc = Assert.Throws<InferenceRequestException>(() => GrpcInferCodec.ReadRequest(request));
        Assert.Equal("input 'b': element 0 is 7, out of the range of BOOL (0 or 1)", grpc.Message);
    }

    private static InferTensor Read(string datatype, string data) =>
        Assert.Single(InferRequestReader.Read(Encoding.UTF8.GetBytes(
            $$"""{"inputs":[{"name":"x","datatype":"{{datatype}}","shape":[{{data.Count(c => c == ',') + 1}}],"data":{{data}}}]}""")).Inputs);

    private static ModelInferRequest Typed(string datatype, InferTensorContents contents, long count)
    {
        var request = new ModelInferRequest { ModelName = "m" };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "x", Datatype = datatype, Shape = { count }, Contents = contents });
        return request;
    }

    private static double[] Floats(InferTensor tensor)
    {
        var size = tensor.DataType.ElementSize();
        var data = tensor.Data.Span;
        var values = new double[data.Length / size];
        for (var i = 0; i < values.Length; i++)
        {
            var at = data[(i * size)..];
            values[i] = tensor.DataType switch
            {
                DataType.Fp16 => (double)System.Buffers.Binary.BinaryPrimitives.ReadHalfLittleEndian(at),
                DataType.Bf16 => BFloat16Bits.Read(at),
                DataType.Fp32 => System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(at),
                _ => System.Buffers.Binary.BinaryPrimitives.ReadDoubleLittleEndian(at),
            };
        }

        return values;
    }
}
