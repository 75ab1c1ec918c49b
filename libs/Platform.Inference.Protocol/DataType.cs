namespace Platform.Inference.Protocol;

/// <summary>Tensor element types of the Open Inference Protocol (KServe v2), plus Triton's BF16.</summary>
public enum DataType
{
    /// <summary>Boolean, one byte per element (0 or 1).</summary>
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

    /// <summary>bfloat16: the upper 16 bits of an IEEE single (8-bit exponent, 7-bit mantissa).</summary>
    Bf16,
}

/// <summary>
/// The one datatype table: protocol names, element sizes, ONNX element types, the worker hop's enum and the value
/// range of every type. REST JSON, REST binary, gRPC and the worker all read it from here.
/// </summary>
public static class DataTypes
{
    private static readonly string[] Names =
        ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES", "BF16"];

    // ONNX TensorProto.DataType numbers, in DataType order.
    private static readonly int[] Onnx = [9, 2, 4, 12, 13, 3, 5, 6, 7, 10, 1, 11, 8, 16];

    private static readonly int[] Sizes = [1, 1, 2, 4, 8, 1, 2, 4, 8, 2, 4, 8, 0, 2];

    /// <summary>Every protocol name, in enum order (for messages listing what is accepted).</summary>
    public static string AllNames { get; } = string.Join(", ", Names);

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

    /// <summary>Whether the type is a binary floating-point type (FP16, BF16, FP32, FP64).</summary>
    public static bool IsFloatingPoint(this DataType type) => type is DataType.Fp16 or DataType.Bf16 or DataType.Fp32 or DataType.Fp64;

    /// <summary>The ONNX <c>TensorProto.DataType</c> number (also ONNX Runtime's element type).</summary>
    public static int ToOnnxElementType(this DataType type) => Onnx[(int)type];

    /// <summary>The protocol type of an ONNX element type, if it has one.</summary>
    public static bool TryFromOnnxElementType(int onnxType, out DataType type)
    {
        var index = Array.IndexOf(Onnx, onnxType);
        type = index < 0 ? default : (DataType)index;
        return index >= 0;
    }

    /// <summary>The worker hop's enum value.</summary>
    public static Wire.DataType ToWire(this DataType type) => (Wire.DataType)((int)type + 1);

    /// <summary>The protocol type of a worker hop enum value; false for unspecified or unknown values.</summary>
    public static bool TryFromWire(Wire.DataType wire, out DataType type)
    {
        var index = (int)wire - 1;
        type = index is >= 0 and < 14 ? (DataType)index : default;
        return index is >= 0 and < 14;
    }

    /// <summary>Smallest and largest value of an integer type (BOOL: 0 and 1).</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not an integer type.</exception>
    public static (long Min, ulong Max) IntegerRange(this DataType type) => type switch
    {
        DataType.Bool => (0, 1),
        DataType.UInt8 => (0, byte.MaxValue),
        DataType.UInt16 => (0, ushort.MaxValue),
        DataType.UInt32 => (0, uint.MaxValue),
        DataType.UInt64 => (0, ulong.MaxValue),
        DataType.Int8 => (sbyte.MinValue, (ulong)sbyte.MaxValue),
        DataType.Int16 => (short.MinValue, (ulong)short.MaxValue),
        DataType.Int32 => (int.MinValue, int.MaxValue),
        DataType.Int64 => (long.MinValue, long.MaxValue),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "not an integer type"),
    };

    /// <summary>Largest finite value of a floating-point type.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not a floating-point type.</exception>
    public static double MaxFinite(this DataType type) => type switch
    {
        DataType.Fp16 => (double)Half.MaxValue,
        DataType.Bf16 => BFloat16Bits.MaxValue,
        DataType.Fp32 => float.MaxValue,
        DataType.Fp64 => double.MaxValue,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "not a floating-point type"),
    };
}
