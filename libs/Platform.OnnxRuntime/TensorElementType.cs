namespace Platform.OnnxRuntime;

/// <summary>
/// Tensor element types; the numbers are ONNX's <c>TensorProto.DataType</c> values, which ONNX Runtime's
/// <c>ONNXTensorElementDataType</c> mirrors. Part of this wrapper's narrow API: its callers (the batcher, the worker's
/// wire handling) name element types, sizes and CLR mappings through it and never touch ONNX Runtime's managed types,
/// so an ONNX Runtime upgrade changes this library only. It converts to ONNX Runtime's enum by number.
/// </summary>
public enum TensorElementType
{
    /// <summary>Not a tensor, or unknown.</summary>
    Undefined = 0,
    /// <summary>32-bit IEEE float (<see cref="float"/>).</summary>
    Float = 1,
    /// <summary>Unsigned 8-bit integer (<see cref="byte"/>).</summary>
    UInt8 = 2,
    /// <summary>Signed 8-bit integer (<see cref="sbyte"/>).</summary>
    Int8 = 3,
    /// <summary>Unsigned 16-bit integer (<see cref="ushort"/>).</summary>
    UInt16 = 4,
    /// <summary>Signed 16-bit integer (<see cref="short"/>).</summary>
    Int16 = 5,
    /// <summary>Signed 32-bit integer (<see cref="int"/>).</summary>
    Int32 = 6,
    /// <summary>Signed 64-bit integer (<see cref="long"/>).</summary>
    Int64 = 7,
    /// <summary>UTF-8 string (<see cref="string"/>); not laid out as fixed-size elements.</summary>
    String = 8,
    /// <summary>Boolean stored as one byte (<see cref="bool"/>).</summary>
    Bool = 9,
    /// <summary>IEEE half precision (<see cref="Half"/> or ONNX Runtime's <see cref="Microsoft.ML.OnnxRuntime.Float16"/>).</summary>
    Float16 = 10,
    /// <summary>64-bit IEEE float (<see cref="double"/>).</summary>
    Double = 11,
    /// <summary>Unsigned 32-bit integer (<see cref="uint"/>).</summary>
    UInt32 = 12,
    /// <summary>Unsigned 64-bit integer (<see cref="ulong"/>).</summary>
    UInt64 = 13,
    /// <summary>Complex of two floats; no CLR mapping here.</summary>
    Complex64 = 14,
    /// <summary>Complex of two doubles; no CLR mapping here.</summary>
    Complex128 = 15,
    /// <summary>bfloat16 (ONNX Runtime's <see cref="Microsoft.ML.OnnxRuntime.BFloat16"/>).</summary>
    BFloat16 = 16,
}

/// <summary>Helpers for <see cref="TensorElementType"/>.</summary>
public static class TensorElementTypeExtensions
{
    /// <summary>Size in bytes of one element, or 0 for <see cref="TensorElementType.String"/> and unknown types.</summary>
    public static int SizeInBytes(this TensorElementType type) => type switch
    {
        TensorElementType.Float => 4,
        TensorElementType.UInt8 => 1,
        TensorElementType.Int8 => 1,
        TensorElementType.UInt16 => 2,
        TensorElementType.Int16 => 2,
        TensorElementType.Int32 => 4,
        TensorElementType.Int64 => 8,
        TensorElementType.Bool => 1,
        TensorElementType.Float16 => 2,
        TensorElementType.Double => 8,
        TensorElementType.UInt32 => 4,
        TensorElementType.UInt64 => 8,
        TensorElementType.Complex64 => 8,
        TensorElementType.Complex128 => 16,
        TensorElementType.BFloat16 => 2,
        _ => 0,
    };

    /// <summary>The element type that corresponds to the CLR type <typeparamref name="T"/>.</summary>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> has no tensor element type.</exception>
    public static TensorElementType ElementTypeOf<T>() where T : unmanaged
    {
        var type = ClrMapping<T>.Type;
        if (type == TensorElementType.Undefined)
        {
            throw new NotSupportedException($"{typeof(T).Name} has no ONNX tensor element type.");
        }
        return type;
    }

    /// <summary>ONNX Runtime's enum value for <paramref name="type"/> (same number).</summary>
    internal static Microsoft.ML.OnnxRuntime.Tensors.TensorElementType ToOrt(this TensorElementType type) =>
        (Microsoft.ML.OnnxRuntime.Tensors.TensorElementType)(int)type;

    /// <summary>Platform's enum value for ONNX Runtime's <paramref name="type"/> (same number).</summary>
    internal static TensorElementType FromOrt(Microsoft.ML.OnnxRuntime.Tensors.TensorElementType type) => (TensorElementType)(int)type;

    private static class ClrMapping<T> where T : unmanaged
    {
        // Computed once per T by the runtime; immutable afterwards.
        public static readonly TensorElementType Type = Map(typeof(T));

        private static TensorElementType Map(Type t)
        {
            if (t == typeof(float)) return TensorElementType.Float;
            if (t == typeof(byte)) return TensorElementType.UInt8;
            if (t == typeof(sbyte)) return TensorElementType.Int8;
            if (t == typeof(ushort)) return TensorElementType.UInt16;
            if (t == typeof(short)) return TensorElementType.Int16;
            if (t == typeof(int)) return TensorElementType.Int32;
            if (t == typeof(long)) return TensorElementType.Int64;
            if (t == typeof(bool)) return TensorElementType.Bool;
            if (t == typeof(Half)) return TensorElementType.Float16;
            if (t == typeof(double)) return TensorElementType.Double;
            if (t == typeof(uint)) return TensorElementType.UInt32;
            if (t == typeof(ulong)) return TensorElementType.UInt64;
            if (t == typeof(Microsoft.ML.OnnxRuntime.Float16)) return TensorElementType.Float16;
            if (t == typeof(Microsoft.ML.OnnxRuntime.BFloat16)) return TensorElementType.BFloat16;
            return TensorElementType.Undefined;
        }
    }
}
