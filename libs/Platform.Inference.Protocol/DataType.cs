namespace Platform.Inference.Protocol;

/// <summary>Tensor element types of the Open Inference Protocol (KServe v2).</summary>
public enum DataType
{
    /// <summary>Boolean, one byte per element.</summary>
    Bool,

    /// <summary>Unsigned 8-bit integer.</summary>
    UInt8,

    /// <summary>Unsigned 16-bit integer.</summary>
    UInt16,

    /// <summary>Unsigned 32-bit integer.</summary>
    UInt32,

    /// <summary>Unsigned 64-bit integer.</summary>
    UInt64,

    /// <summary>Signed 8-bit integer.</summary>
    Int8,

    /// <summary>Signed 16-bit integer.</summary>
    Int16,

    /// <summary>Signed 32-bit integer.</summary>
    Int32,

    /// <summary>Signed 64-bit integer.</summary>
    Int64,

    /// <summary>IEEE 754 half precision.</summary>
    Fp16,

    /// <summary>IEEE 754 single precision.</summary>
    Fp32,

    /// <summary>IEEE 754 double precision.</summary>
    Fp64,

    /// <summary>Variable-length byte strings.</summary>
    Bytes,
}

/// <summary>Names, sizes and ONNX mappings of <see cref="DataType"/>.</summary>
public static class DataTypes
{
    private static readonly string[] Names =
        ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"];

    // ONNX TensorProto.DataType numbers, in DataType order.
    private static readonly int[] Onnx = [9, 2, 4, 12, 13, 3, 5, 6, 7, 10, 1, 11, 8];

    private static readonly int[] Sizes = [1, 1, 2, 4, 8, 1, 2, 4, 8, 2, 4, 8, 0];

    /// <summary>The protocol name ("FP32").</summary>
    public static string ToProtocolName(this DataType type) => Names[(int)type];

    /// <summary>Parses a protocol name; case-sensitive as the specification writes them.</summary>
    public static bool TryParse(string? name, out DataType type)
    {
        var index = name is null ? -1 : Array.IndexOf(Names, name);
        type = index < 0 ? default : (DataType)index;
        return index >= 0;
    }

    /// <summary>Bytes per element; 0 for <see cref="DataType.Bytes"/> (variable length).</summary>
    public static int ElementSize(this DataType type) => Sizes[(int)type];

    /// <summary>The ONNX <c>TensorProto.DataType</c> number (also ONNX Runtime's element type).</summary>
    public static int ToOnnxElementType(this DataType type) => Onnx[(int)type];

    /// <summary>The protocol type of an ONNX element type, if it has one.</summary>
    public static bool TryFromOnnxElementType(int onnxType, out DataType type)
    {
        var index = Array.IndexOf(Onnx, onnxType);
        type = index < 0 ? default : (DataType)index;
        return index >= 0;
    }
}
