using System.Runtime.InteropServices;
using Google.Protobuf;
using Platform.OnnxModels.Proto;

namespace Platform.OnnxModels;

/// <summary>ONNX tensor element types (the numbers of ONNX's <c>TensorProto.DataType</c>).</summary>
public enum OnnxDataType
{
    /// <summary>float32.</summary>
    Float = 1,
    /// <summary>uint8.</summary>
    UInt8 = 2,
    /// <summary>int8.</summary>
    Int8 = 3,
    /// <summary>uint16.</summary>
    UInt16 = 4,
    /// <summary>int16.</summary>
    Int16 = 5,
    /// <summary>int32.</summary>
    Int32 = 6,
    /// <summary>int64.</summary>
    Int64 = 7,
    /// <summary>UTF-8 string.</summary>
    String = 8,
    /// <summary>bool.</summary>
    Bool = 9,
    /// <summary>IEEE float16.</summary>
    Float16 = 10,
    /// <summary>float64.</summary>
    Double = 11,
    /// <summary>uint32.</summary>
    UInt32 = 12,
    /// <summary>uint64.</summary>
    UInt64 = 13,
    /// <summary>bfloat16.</summary>
    BFloat16 = 16,
}

/// <summary>One dimension of a graph input/output: a fixed size or a symbolic name such as "batch".</summary>
public readonly record struct OnnxDim
{
    private OnnxDim(long? value, string? symbol)
    {
        Value = value;
        Symbol = symbol;
    }

    /// <summary>Fixed size, or null when symbolic.</summary>
    public long? Value { get; }

    /// <summary>Symbolic name (ONNX <c>dim_param</c>), or null when fixed.</summary>
    public string? Symbol { get; }

    /// <summary>A fixed dimension.</summary>
    public static OnnxDim Fixed(long value) => value >= 0 ? new(value, null) : throw new ArgumentOutOfRangeException(nameof(value));

    /// <summary>A dynamic dimension with a symbolic name.</summary>
    public static OnnxDim Symbolic(string name) => string.IsNullOrEmpty(name) ? throw new ArgumentException("Symbol is empty.", nameof(name)) : new(null, name);

    /// <summary>Fixed dimension from a number.</summary>
    public static implicit operator OnnxDim(long value) => Fixed(value);

    /// <summary>Symbolic dimension from a name.</summary>
    public static implicit operator OnnxDim(string name) => Symbolic(name);
}

/// <summary>A node attribute.</summary>
public sealed class OnnxAttribute
{
    private OnnxAttribute(AttributeProto proto)
    {
        Proto = proto;
    }

    internal AttributeProto Proto { get; }

    /// <summary>Integer attribute.</summary>
    public static OnnxAttribute Int(string name, long value) =>
        new(new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value });

    /// <summary>Float attribute.</summary>
    public static OnnxAttribute Float(string name, float value) =>
        new(new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value });

    /// <summary>String attribute.</summary>
    public static OnnxAttribute String(string name, string value) =>
        new(new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) });

    /// <summary>Integer list attribute.</summary>
    public static OnnxAttribute Ints(string name, params long[] values)
    {
        var proto = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        proto.Ints.AddRange(values);
        return new(proto);
    }

    /// <summary>Float list attribute.</summary>
    public static OnnxAttribute Floats(string name, params float[] values)
    {
        var proto = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Floats };
        proto.Floats.AddRange(values);
        return new(proto);
    }
}

/// <summary>
/// Builds an ONNX model graph and serialises it to deterministic bytes (same calls, same bytes). Numeric
/// initializers are stored little-endian in <c>raw_data</c>.
/// </summary>
public sealed class OnnxGraphBuilder
{
    /// <summary>ONNX IR version written into models (IR 8 pairs with opset 17).</summary>
    public const long IrVersion = 8;

    /// <summary>Default ONNX opset: 17 keeps ReduceMean/ReduceL2 axes as attributes and is supported by every current ONNX Runtime.</summary>
    public const long DefaultOpset = 17;

    private readonly GraphProto _graph;
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private int _nodeCounter;

    /// <summary>Starts an empty graph.</summary>
    public OnnxGraphBuilder(string graphName, long opsetVersion = DefaultOpset)
    {
        _graph = new GraphProto { Name = graphName };
        OpsetVersion = opsetVersion;
    }

    /// <summary>The default-domain opset imported by the model.</summary>
    public long OpsetVersion { get; }

    /// <summary>Declares a graph input.</summary>
    public OnnxGraphBuilder AddInput(string name, OnnxDataType type, params OnnxDim[] shape)
    {
        _graph.Input.Add(ValueInfo(Unique(name), type, shape));
        return this;
    }

    /// <summary>Declares a graph output (it must be produced by a node).</summary>
    public OnnxGraphBuilder AddOutput(string name, OnnxDataType type, params OnnxDim[] shape)
    {
        _graph.Output.Add(ValueInfo(name, type, shape));
        return this;
    }

    /// <summary>Adds a float32 constant tensor.</summary>
    public OnnxGraphBuilder AddInitializer(string name, ReadOnlySpan<float> values, params long[] dims) =>
        AddRawInitializer(name, OnnxDataType.Float, MemoryMarshal.AsBytes(values), values.Length, dims);

    /// <summary>Adds an int64 constant tensor.</summary>
    public OnnxGraphBuilder AddInitializer(string name, ReadOnlySpan<long> values, params long[] dims) =>
        AddRawInitializer(name, OnnxDataType.Int64, MemoryMarshal.AsBytes(values), values.Length, dims);

    /// <summary>Adds a float64 constant tensor.</summary>
    public OnnxGraphBuilder AddInitializer(string name, ReadOnlySpan<double> values, params long[] dims) =>
        AddRawInitializer(name, OnnxDataType.Double, MemoryMarshal.AsBytes(values), values.Length, dims);

    /// <summary>Adds a node; returns its first output name for chaining.</summary>
    public string AddNode(string opType, IReadOnlyList<string> inputs, IReadOnlyList<string> outputs, params OnnxAttribute[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = $"{opType}_{_nodeCounter++}" };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        foreach (var attribute in attributes)
        {
            node.Attribute.Add(attribute.Proto);
        }
        _graph.Node.Add(node);
        return outputs.Count > 0 ? outputs[0] : string.Empty;
    }

    /// <summary>Adds a single-output node whose output gets a generated name; returns that name.</summary>
    public string Op(string opType, IReadOnlyList<string> inputs, params OnnxAttribute[] attributes) =>
        AddNode(opType, inputs, [$"{opType.ToLowerInvariant()}_{_nodeCounter}_out"], attributes);

    /// <summary>Serialises the model.</summary>
    /// <param name="docString">Model description stored in <c>ModelProto.doc_string</c>.</param>
    /// <param name="metadata">Key/value pairs stored in <c>ModelProto.metadata_props</c>, written in key order.</param>
    public byte[] ToBytes(string docString = "", IReadOnlyDictionary<string, string>? metadata = null)
    {
        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "Platform.OnnxModels",
            ProducerVersion = "1",
            Domain = "platform",
            ModelVersion = 1,
            DocString = docString,
            Graph = _graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = string.Empty, Version = OpsetVersion });
        if (metadata is not null)
        {
            foreach (var (key, value) in metadata.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
            }
        }
        return model.ToByteArray();
    }

    private OnnxGraphBuilder AddRawInitializer(string name, OnnxDataType type, ReadOnlySpan<byte> bytes, int count, long[] dims)
    {
        long expected = 1;
        foreach (var dim in dims)
        {
            expected *= dim;
        }
        if (expected != count)
        {
            throw new ArgumentException($"Initializer '{name}' has {count} values but dims [{string.Join(", ", dims)}] need {expected}.");
        }
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("ONNX raw_data is little-endian; big-endian hosts are not supported.");
        }
        var tensor = new TensorProto { Name = Unique(name), DataType = (int)type, RawData = ByteString.CopyFrom(bytes) };
        tensor.Dims.AddRange(dims);
        _graph.Initializer.Add(tensor);
        return this;
    }

    private string Unique(string name)
    {
        if (!_names.Add(name))
        {
            throw new ArgumentException($"Name '{name}' is already used in graph '{_graph.Name}'.", nameof(name));
        }
        return name;
    }

    private static ValueInfoProto ValueInfo(string name, OnnxDataType type, OnnxDim[] shape)
    {
        var tensorShape = new TensorShapeProto();
        foreach (var dim in shape)
        {
            tensorShape.Dim.Add(dim.Symbol is not null
                ? new TensorShapeProto.Types.Dimension { DimParam = dim.Symbol }
                : new TensorShapeProto.Types.Dimension { DimValue = dim.Value!.Value });
        }
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = tensorShape } },
        };
    }
}
