using Microsoft.ML.OnnxRuntime;
using Platform.OnnxModels;

namespace Platform.OnnxRuntime.Tests;

public sealed class ElementTypeTests(OrtFixture fixture)
{
    public static TheoryData<string> NumericSuffixes =>
        new(AllTypesModel.Types.Where(t => t.Type != OnnxDataType.String).Select(t => t.Suffix));

    [Theory]
    [MemberData(nameof(NumericSuffixes))]
    public void Numeric_type_round_trips_through_identity(string suffix)
    {
        switch (suffix)
        {
            case "float": RoundTrip(suffix, [0f, -1.5f, float.MaxValue, float.Epsilon, float.NegativeInfinity, 3.25f]); break;
            case "uint8": RoundTrip(suffix, new byte[] { 0, 1, 127, 128, 254, 255 }); break;
            case "int8": RoundTrip(suffix, new sbyte[] { 0, -1, 127, -128, 5, -5 }); break;
            case "uint16": RoundTrip(suffix, new ushort[] { 0, 1, 32767, 32768, 65534, 65535 }); break;
            case "int16": RoundTrip(suffix, new short[] { 0, -1, short.MaxValue, short.MinValue, 300, -300 }); break;
            case "int32": RoundTrip(suffix, [0, -1, int.MaxValue, int.MinValue, 70000, -70000]); break;
            case "int64": RoundTrip(suffix, [0L, -1L, long.MaxValue, long.MinValue, 1L << 40, -(1L << 40)]); break;
            case "bool": RoundTrip(suffix, [true, false, false, true, true, false]); break;
            case "float16": RoundTrip(suffix, [(Half)0, (Half)(-1.5), Half.MaxValue, Half.Epsilon, Half.NegativeInfinity, (Half)0.333]); break;
            case "double": RoundTrip(suffix, [0d, -1.5, double.MaxValue, double.Epsilon, Math.PI, -Math.E]); break;
            case "uint32": RoundTrip(suffix, [0u, 1u, uint.MaxValue, 1u << 31, 12345u, 7u]); break;
            case "uint64": RoundTrip(suffix, [0UL, 1UL, ulong.MaxValue, 1UL << 63, 12345UL, 7UL]); break;
            default: Assert.Fail($"No sample values for {suffix}."); break;
        }
    }

    private void RoundTrip<T>(string suffix, T[] values) where T : unmanaged
    {
        var expectedType = TensorElementTypeExtensions.ElementTypeOf<T>();
        var session = fixture.AllTypesSession;
        Assert.Equal(expectedType, session.GetInput(AllTypesModel.InputName(suffix)).ElementType);
        var inputs = BuildInputs(suffix, TensorData.From(values, 2, 3));
        using var result = session.Run(inputs, [AllTypesModel.OutputName(suffix)]);
        var output = Assert.Single(result);
        Assert.Equal(expectedType, output.ElementType);
        Assert.Equal([2L, 3L], output.Shape);
        Assert.Equal(values, output.ToArray<T>());
        Assert.Equal(values.Length * expectedType.SizeInBytes(), output.GetBytes().Length);
        Assert.Throws<InvalidOperationException>(() => output.GetStrings());
    }

    [Fact]
    public void Strings_round_trip_including_empty_and_non_ascii()
    {
        string[] values = ["", "hello", "ünïcødé ✓", "日本語", new string('x', 1000), "tab\tnew\nline"];
        var inputs = BuildInputs("string", TensorData.FromStrings(values, 3, 2));
        using var result = fixture.AllTypesSession.Run(inputs, ["out_string"]);
        var output = result[0];
        Assert.Equal(TensorElementType.String, output.ElementType);
        Assert.Equal([3L, 2L], output.Shape);
        Assert.Equal(0, output.ByteLength);
        Assert.Equal(values, output.GetStrings());
        Assert.Throws<InvalidOperationException>(() => output.GetBytes());
    }

    [Fact]
    public void Strings_with_embedded_nul_characters_round_trip()
    {
        // ONNX Runtime's string elements carry their length, so a NUL is data, not an end.
        string[] values = ["a\0b", "\0", "end\0"];
        using var result = fixture.AllTypesSession.Run(BuildInputs("string", TensorData.FromStrings(values, 1, 3)), ["out_string"]);
        Assert.Equal(values, result[0].GetStrings());
    }

    [Fact]
    public void BFloat16_round_trips_through_identity()
    {
        var graph = new OnnxGraphBuilder("bf16_identity");
        graph.AddInput("in_bf16", OnnxDataType.BFloat16, "batch", 3);
        graph.AddNode("Identity", ["in_bf16"], ["out_bf16"]);
        graph.AddOutput("out_bf16", OnnxDataType.BFloat16, "batch", 3);
        using var session = fixture.Environment.CreateSession(graph.ToBytes());
        Assert.Equal(TensorElementType.BFloat16, session.GetInput("in_bf16").ElementType);

        // 1.0, -2.0, 0.5, +inf, the smallest normal, 3.140625 as raw bfloat16 bits.
        BFloat16[] values = [new(0x3F80), new(0xC000), new(0x3F00), new(0x7F80), new(0x0080), new(0x4049)];
        using var result = session.Run([new NamedTensor("in_bf16", TensorData.From(values, 2, 3))]);
        var output = result[0];
        Assert.Equal(TensorElementType.BFloat16, output.ElementType);
        Assert.Equal(values, output.ToArray<BFloat16>());
        Assert.Equal([1f, -2f, 0.5f, float.PositiveInfinity], output.ToArray<BFloat16>().Take(4).Select(v => v.ToFloat()));
    }

    [Fact]
    public void Onnx_runtime_float16_and_system_half_are_the_same_tensor_type()
    {
        Float16[] values = [new(0x3C00), new(0xC000), new(0x7BFF), new(0x0001), new(0xFC00), new(0x3555)];
        var inputs = BuildInputs("float16", TensorData.From(values, 2, 3));
        using var result = fixture.AllTypesSession.Run(inputs, ["out_float16"]);
        Assert.Equal(values, result[0].ToArray<Float16>());
        Assert.Equal([(Half)1, (Half)(-2), Half.MaxValue], result[0].ToArray<Half>().Take(3));
    }

    [Fact]
    public void All_empty_strings_and_zero_element_string_tensors_round_trip()
    {
        using (var result = fixture.AllTypesSession.Run(BuildInputs("string", TensorData.FromStrings(["", ""], 1, 2)), ["out_string"]))
        {
            Assert.Equal(["", ""], result[0].GetStrings());
        }
        using (var result = fixture.AllTypesSession.Run(BuildInputs("string", TensorData.FromStrings([], 0, 2)), ["out_string"]))
        {
            Assert.Empty(result[0].GetStrings());
            Assert.Equal([0L, 2L], result[0].Shape);
        }
    }

    [Fact]
    public void Every_output_of_the_all_types_model_comes_back()
    {
        using var result = fixture.AllTypesSession.Run(BuildInputs("float", TensorData.From(new float[] { 1, 2 }, 1, 2)));
        Assert.Equal(AllTypesModel.Types.Count, result.Count);
        Assert.Equal([1f, 2f], result["out_float"].ToArray<float>());
        Assert.Equal([(Half)1, (Half)1], result["out_float16"].ToArray<Half>());
        Assert.Equal(["1", "1"], result["out_string"].GetStrings());
    }

    [Fact]
    public void Typed_read_with_the_wrong_clr_type_is_rejected()
    {
        using var result = fixture.AllTypesSession.Run(BuildInputs("int32", TensorData.From(new[] { 1, 2 }, 1, 2)), ["out_int32"]);
        var error = Assert.Throws<InvalidOperationException>(() => result[0].ToArray<uint>());
        Assert.Contains("Int32", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Element_sizes_follow_onnx()
    {
        Assert.Equal(4, TensorElementType.Float.SizeInBytes());
        Assert.Equal(2, TensorElementType.Float16.SizeInBytes());
        Assert.Equal(1, TensorElementType.Bool.SizeInBytes());
        Assert.Equal(8, TensorElementType.UInt64.SizeInBytes());
        Assert.Equal(0, TensorElementType.String.SizeInBytes());
        Assert.Throws<NotSupportedException>(() => TensorElementTypeExtensions.ElementTypeOf<char>());
        Assert.Equal(TensorElementType.Float16, TensorElementTypeExtensions.ElementTypeOf<Half>());
    }

    /// <summary>Every input of the all-types model gets a value: the one under test, and ones for the rest.</summary>
    internal static List<NamedTensor> BuildInputs(string suffix, TensorData data)
    {
        var rows = data.Shape[0];
        var columns = data.Shape[1];
        var count = (int)(rows * columns);
        var inputs = new List<NamedTensor>();
        foreach (var (type, s) in AllTypesModel.Types)
        {
            var value = s == suffix ? data : Filler(type, count, rows, columns);
            inputs.Add(new NamedTensor(AllTypesModel.InputName(s), value));
        }
        return inputs;
    }

    private static TensorData Filler(OnnxDataType type, int count, long rows, long columns) => type switch
    {
        OnnxDataType.String => TensorData.FromStrings(Enumerable.Repeat("1", count).ToArray(), rows, columns),
        OnnxDataType.Float16 => TensorData.From(Enumerable.Repeat((Half)1, count).ToArray(), rows, columns),
        OnnxDataType.Bool => TensorData.From(Enumerable.Repeat(true, count).ToArray(), rows, columns),
        _ => TensorData.FromBytes((TensorElementType)(int)type, OnesOf((TensorElementType)(int)type, count), rows, columns),
    };

    private static byte[] OnesOf(TensorElementType type, int count)
    {
        var size = type.SizeInBytes();
        var bytes = new byte[count * size];
        for (var i = 0; i < count; i++)
        {
            switch (type)
            {
                case TensorElementType.Float: BitConverter.TryWriteBytes(bytes.AsSpan(i * size), 1f); break;
                case TensorElementType.Double: BitConverter.TryWriteBytes(bytes.AsSpan(i * size), 1d); break;
                default: bytes[i * size] = 1; break;
            }
        }
        return bytes;
    }
}
