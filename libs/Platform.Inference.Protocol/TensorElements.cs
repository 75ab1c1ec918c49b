using System.Buffers.Binary;
using System.Globalization;

namespace Platform.Inference.Protocol;

/// <summary>
/// Writes single elements given as numbers (JSON <c>data</c>, gRPC typed contents) into little-endian tensor bytes,
/// checking each against its datatype's range: an integer outside its type, or a finite number whose magnitude rounds
/// past the largest finite value of its float type, is refused rather than wrapped or turned into infinity. NaN and
/// the infinities are values of every float type and are written as given; a finite number too small for the type
/// rounds to zero (IEEE 754 underflow), as any float parser does.
/// </summary>
public static class TensorElements
{
    /// <summary>Writes a signed integer as an element of integer type <paramref name="type"/>; false when out of its range.</summary>
    public static bool TryWriteInteger(DataType type, long value, Span<byte> destination)
    {
        var (min, max) = type.IntegerRange();
        if (value < min || (value > 0 && (ulong)value > max))
        {
            return false;
        }

        WriteIntegerBits(type, unchecked((ulong)value), destination);
        return true;
    }

    /// <summary>Writes an unsigned integer as an element of integer type <paramref name="type"/>; false when out of its range.</summary>
    public static bool TryWriteUnsigned(DataType type, ulong value, Span<byte> destination)
    {
        if (value > type.IntegerRange().Max)
        {
            return false;
        }

        WriteIntegerBits(type, value, destination);
        return true;
    }

    /// <summary>Writes a single as an element of FP16, BF16, FP32 or FP64; false when a finite value overflows the type.</summary>
    public static bool TryWriteSingle(DataType type, float value, Span<byte> destination)
    {
        switch (type)
        {
            case DataType.Fp32:
                BinaryPrimitives.WriteSingleLittleEndian(destination, value);
                return true;
            case DataType.Fp64:
                BinaryPrimitives.WriteDoubleLittleEndian(destination, value);
                return true;
            case DataType.Fp16:
                var half = (Half)value;
                BinaryPrimitives.WriteHalfLittleEndian(destination, half);
                return !Half.IsInfinity(half) || float.IsInfinity(value);
            case DataType.Bf16:
                var bits = BFloat16Bits.FromSingle(value);
                BinaryPrimitives.WriteUInt16LittleEndian(destination, bits);
                return !float.IsInfinity(BFloat16Bits.ToSingle(bits)) || float.IsInfinity(value);
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "not a floating-point type");
        }
    }

    /// <summary>Writes a double as an element of FP16, BF16, FP32 or FP64; false when a finite value overflows the type.</summary>
    public static bool TryWriteDouble(DataType type, double value, Span<byte> destination)
    {
        switch (type)
        {
            case DataType.Fp64:
                BinaryPrimitives.WriteDoubleLittleEndian(destination, value);
                return true;
            case DataType.Fp16:
                // Straight to half: going through float could round twice.
                var half = (Half)value;
                BinaryPrimitives.WriteHalfLittleEndian(destination, half);
                return !Half.IsInfinity(half) || double.IsInfinity(value);
            default:
                var single = (float)value;
                return (!float.IsInfinity(single) || double.IsInfinity(value)) && TryWriteSingle(type, single, destination);
        }
    }

    /// <summary>The range of <paramref name="type"/> as messages state it: "0 to 255", "±3.4028235E+38".</summary>
    public static string DescribeRange(DataType type) => type switch
    {
        DataType.Bool => "true/false or 0/1",
        _ when type.IsFloatingPoint() => "±" + type.MaxFinite().ToString(type == DataType.Fp64 ? "R" : "G8", CultureInfo.InvariantCulture),
        DataType.Bytes => "byte strings",
        _ => string.Create(CultureInfo.InvariantCulture, $"{type.IntegerRange().Min} to {type.IntegerRange().Max}"),
    };

    /// <summary>"element 3 (1e39) is out of the range of FP32 (±3.4028235E+38)".</summary>
    public static string OutOfRange(long index, string value, DataType type) =>
        string.Create(CultureInfo.InvariantCulture, $"element {index} ({value}) is out of the range of {type.ToProtocolName()} ({DescribeRange(type)})");

    private static void WriteIntegerBits(DataType type, ulong bits, Span<byte> destination)
    {
        switch (type.ElementSize())
        {
            case 1: destination[0] = (byte)bits; break;
            case 2: BinaryPrimitives.WriteUInt16LittleEndian(destination, (ushort)bits); break;
            case 4: BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)bits); break;
            default: BinaryPrimitives.WriteUInt64LittleEndian(destination, bits); break;
        }
    }
}
