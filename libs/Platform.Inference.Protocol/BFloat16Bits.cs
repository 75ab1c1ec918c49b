using System.Buffers.Binary;

namespace Platform.Inference.Protocol;

/// <summary>bfloat16 as raw 16-bit patterns: the upper half of an IEEE single, rounded to nearest even.</summary>
public static class BFloat16Bits
{
    /// <summary>Largest finite bfloat16 (0x7F7F), about 3.3895e38.</summary>
    public const double MaxValue = 3.3895313892515355e38;

    /// <summary>The bfloat16 nearest to <paramref name="value"/> (ties to even); NaN stays NaN, overflow becomes infinity.</summary>
    public static ushort FromSingle(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
        {
            // Keep it a quiet NaN whatever mantissa bits the rounding would drop.
            return (ushort)((bits >> 16) | 0x0040);
        }

        var rounding = 0x7FFFu + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    /// <summary>The single with the same value as bfloat16 pattern <paramref name="bits"/> (exact).</summary>
    public static float ToSingle(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>Reads a little-endian bfloat16 as a single.</summary>
    public static float Read(ReadOnlySpan<byte> source) => ToSingle(BinaryPrimitives.ReadUInt16LittleEndian(source));
}
