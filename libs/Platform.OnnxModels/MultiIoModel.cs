namespace Platform.OnnxModels;

/// <summary>
/// A model with several inputs and outputs of different element types, all with a dynamic batch dimension:
/// <list type="bullet">
/// <item><c>x</c> float[batch,4], <c>ids</c> int64[batch,3], <c>scale</c> double[batch,1] (inputs)</item>
/// <item><c>y</c> float[batch,4] = (x + bias) · float(scale)</item>
/// <item><c>id_sum</c> int64[batch,1] = Σ ids over the row</item>
/// <item><c>positive</c> bool[batch,4] = x &gt; 0</item>
/// <item><c>scale_squared</c> double[batch,1] = scale · scale</item>
/// </list>
/// The static Compute* methods are the C# reference.
/// </summary>
public static class MultiIoModel
{
    /// <summary>Width of <c>x</c> and <c>y</c>.</summary>
    public const int Width = 4;

    /// <summary>Width of <c>ids</c>.</summary>
    public const int IdsWidth = 3;

    /// <summary>The constant bias added to <c>x</c>.</summary>
    public static IReadOnlyList<float> Bias { get; } = [0.5f, -1f, 2f, 0f];

    /// <summary>The ONNX model.</summary>
    public static GeneratedModel Create(string kind = "multi-io")
    {
        var graph = new OnnxGraphBuilder("multi_io");
        graph.AddInput("x", OnnxDataType.Float, "batch", Width);
        graph.AddInput("ids", OnnxDataType.Int64, "batch", IdsWidth);
        graph.AddInput("scale", OnnxDataType.Double, "batch", 1);
        graph.AddInitializer("bias", Bias.ToArray(), Width);
        graph.AddInitializer("sum_axes", [1L], 1);
        graph.AddInitializer("zero", [0f], 1);

        var scaleFloat = graph.Op("Cast", ["scale"], OnnxAttribute.Int("to", (long)OnnxDataType.Float));
        graph.AddNode("Mul", [graph.Op("Add", ["x", "bias"]), scaleFloat], ["y"]);
        graph.AddNode("ReduceSum", ["ids", "sum_axes"], ["id_sum"], OnnxAttribute.Int("keepdims", 1));
        graph.AddNode("Greater", ["x", "zero"], ["positive"]);
        graph.AddNode("Mul", ["scale", "scale"], ["scale_squared"]);

        graph.AddOutput("y", OnnxDataType.Float, "batch", Width);
        graph.AddOutput("id_sum", OnnxDataType.Int64, "batch", 1);
        graph.AddOutput("positive", OnnxDataType.Bool, "batch", Width);
        graph.AddOutput("scale_squared", OnnxDataType.Double, "batch", 1);

        const string description = "Multi-io: x float[batch,4], ids int64[batch,3], scale double[batch,1] → " +
                                   "y float[batch,4] = (x+bias)*scale, id_sum int64[batch,1], positive bool[batch,4] = x>0, " +
                                   "scale_squared double[batch,1]";
        var bytes = graph.ToBytes(description, new Dictionary<string, string> { ["platform.kind"] = kind });
        return new GeneratedModel(kind, bytes, ParameterCount: Width, FlopsPerSample: 2 * Width + IdsWidth + Width + 1, description);
    }

    /// <summary>Reference for <c>y</c>.</summary>
    public static float[] ComputeY(ReadOnlySpan<float> x, ReadOnlySpan<double> scale, int batch)
    {
        var y = new float[batch * Width];
        for (var b = 0; b < batch; b++)
        {
            var s = (float)scale[b];
            for (var i = 0; i < Width; i++)
            {
                y[b * Width + i] = (x[b * Width + i] + Bias[i]) * s;
            }
        }
        return y;
    }

    /// <summary>Reference for <c>id_sum</c>.</summary>
    public static long[] ComputeIdSum(ReadOnlySpan<long> ids, int batch)
    {
        var sums = new long[batch];
        for (var b = 0; b < batch; b++)
        {
            for (var i = 0; i < IdsWidth; i++)
            {
                sums[b] += ids[b * IdsWidth + i];
            }
        }
        return sums;
    }

    /// <summary>Reference for <c>positive</c>.</summary>
    public static bool[] ComputePositive(ReadOnlySpan<float> x)
    {
        var result = new bool[x.Length];
        for (var i = 0; i < x.Length; i++)
        {
            result[i] = x[i] > 0f;
        }
        return result;
    }

    /// <summary>Reference for <c>scale_squared</c>.</summary>
    public static double[] ComputeScaleSquared(ReadOnlySpan<double> scale)
    {
        var result = new double[scale.Length];
        for (var i = 0; i < scale.Length; i++)
        {
            result[i] = scale[i] * scale[i];
        }
        return result;
    }
}

/// <summary>
/// One Identity per supported element type, for binding tests: input <c>in_{type}</c> → output
/// <c>out_{type}</c>, both of shape [batch, n] (both dimensions dynamic), where {type} is e.g. float, uint64,
/// string, float16, bool.
/// </summary>
public static class AllTypesModel
{
    /// <summary>The element types covered, with the suffix used in input/output names.</summary>
    public static IReadOnlyList<(OnnxDataType Type, string Suffix)> Types { get; } =
    [
        (OnnxDataType.Float, "float"),
        (OnnxDataType.UInt8, "uint8"),
        (OnnxDataType.Int8, "int8"),
        (OnnxDataType.UInt16, "uint16"),
        (OnnxDataType.Int16, "int16"),
        (OnnxDataType.Int32, "int32"),
        (OnnxDataType.Int64, "int64"),
        (OnnxDataType.String, "string"),
        (OnnxDataType.Bool, "bool"),
        (OnnxDataType.Float16, "float16"),
        (OnnxDataType.Double, "double"),
        (OnnxDataType.UInt32, "uint32"),
        (OnnxDataType.UInt64, "uint64"),
    ];

    /// <summary>Input name for a type suffix.</summary>
    public static string InputName(string suffix) => "in_" + suffix;

    /// <summary>Output name for a type suffix.</summary>
    public static string OutputName(string suffix) => "out_" + suffix;

    /// <summary>The ONNX model.</summary>
    public static GeneratedModel Create(string kind = "all-types")
    {
        var graph = new OnnxGraphBuilder("all_types_identity");
        foreach (var (type, suffix) in Types)
        {
            graph.AddInput(InputName(suffix), type, "batch", "n");
            graph.AddNode("Identity", [InputName(suffix)], [OutputName(suffix)]);
            graph.AddOutput(OutputName(suffix), type, "batch", "n");
        }
        const string description = "Identity per element type: in_{type}[batch,n] → out_{type}[batch,n] for float, uint8, int8, uint16, " +
                                   "int16, int32, int64, string, bool, float16, double, uint32, uint64";
        var bytes = graph.ToBytes(description, new Dictionary<string, string> { ["platform.kind"] = kind });
        return new GeneratedModel(kind, bytes, ParameterCount: 0, FlopsPerSample: 0, description);
    }
}
