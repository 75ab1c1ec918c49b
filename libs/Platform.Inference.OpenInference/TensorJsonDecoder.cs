using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Platform.Inference.Protocol;

namespace Platform.Inference.OpenInference;

/// <summary>
/// Turns a tensor's JSON <c>data</c> array (flat or nested, row-major) into raw little-endian element bytes, writing
/// each element straight into the destination buffer: no per-element objects, no intermediate arrays.
/// </summary>
internal static class TensorJsonDecoder
{
    /// <summary>Decodes the JSON value starting at <paramref name="json"/>[0].</summary>
    /// <param name="json">UTF-8 JSON whose first token is the <c>data</c> value.</param>
    /// <param name="what">How messages name the tensor, e.g. "input 'x'".</param>
    /// <param name="type">Element type.</param>
    /// <param name="shape">Declared shape.</param>
    /// <param name="expectedCount">Element count of the shape.</param>
    public static byte[] Decode(ReadOnlySpan<byte> json, string what, DataType type, long[] shape, long expectedCount)
    {
        var reader = new Utf8JsonReader(json, isFinalBlock: true, state: default);
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new InferenceRequestException($"{what}: 'data' must be an array");
        }

        // Every element costs at least one byte of JSON text, so a shape needing more elements than the text has bytes
        // can never match: count without allocating and report the mismatch instead of allocating for a hostile shape.
        var plausible = expectedCount <= json.Length;
        var size = type.ElementSize();
        byte[]? fixedBuffer = type == DataType.Bytes || !plausible ? null : new byte[checked((int)(expectedCount * size))];
        var strings = type == DataType.Bytes && plausible ? new ArrayBufferWriter<byte>() : null;

        long index = 0;
        var depth = 0;
        var nested = false;
        Span<long> lengths = stackalloc long[Math.Max(1, shape.Length) + 1];
        lengths[0] = 0;
        var first = true;

        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartArray:
                    if (depth == 0 && first)
                    {
                        nested = true;
                    }

                    if (!nested)
                    {
                        throw new InferenceRequestException($"{what}: 'data' mixes values and arrays; use a flat array or arrays nested like the shape {FormatShape(shape)}");
                    }

                    lengths[depth]++;
                    depth++;
                    if (depth >= shape.Length)
                    {
                        throw new InferenceRequestException($"{what}: nested 'data' is deeper than the shape {FormatShape(shape)}");
                    }

                    lengths[depth] = 0;
                    first = false;
                    break;

                case JsonTokenType.EndArray:
                    if (nested && lengths[depth] != shape[depth])
                    {
                        throw new InferenceRequestException(
                            $"{what}: nested 'data' does not match the shape {FormatShape(shape)}: dimension {depth} has {lengths[depth]} items, expected {shape[depth]}");
                    }

                    if (depth == 0)
                    {
                        if (index != expectedCount)
                        {
                            throw new InferenceRequestException($"{what}: shape {FormatShape(shape)} needs {expectedCount} elements but 'data' has {index}");
                        }

                        return fixedBuffer ?? strings?.WrittenSpan.ToArray() ?? [];
                    }

                    depth--;
                    break;

                default:
                    if (nested && depth != shape.Length - 1)
                    {
                        throw new InferenceRequestException(
                            $"{what}: nested 'data' does not match the shape {FormatShape(shape)}: a value appears at depth {depth}, values belong at depth {shape.Length - 1}");
                    }

                    first = false;
                    lengths[depth]++;
                    if (index < expectedCount && plausible)
                    {
                        if (strings is not null)
                        {
                            WriteString(ref reader, what, index, strings);
                        }
                        else
                        {
                            WriteElement(ref reader, what, index, type, fixedBuffer.AsSpan(checked((int)(index * size)), size));
                        }
                    }

                    index++;
                    break;
            }
        }

        throw new InferenceRequestException($"{what}: 'data' is not terminated");
    }

    private static void WriteString(ref Utf8JsonReader reader, string what, long index, ArrayBufferWriter<byte> destination)
    {
        if (reader.TokenType != JsonTokenType.String)
        {
            throw new InferenceRequestException($"{what}: element {index} ({Raw(ref reader)}) is not a string (BYTES elements are JSON strings)");
        }

        var length = reader.HasValueSequence ? checked((int)reader.ValueSequence.Length) : reader.ValueSpan.Length;
        var span = destination.GetSpan(4 + length);
        var written = reader.ValueIsEscaped || reader.HasValueSequence ? reader.CopyString(span[4..]) : Copy(reader.ValueSpan, span[4..]);
        BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)written);
        destination.Advance(4 + written);
    }

    private static int Copy(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        source.CopyTo(destination);
        return source.Length;
    }

    private static void WriteElement(ref Utf8JsonReader reader, string what, long index, DataType type, Span<byte> destination)
    {
        var ok = type switch
        {
            DataType.Bool => WriteBool(ref reader, destination),
            DataType.UInt8 => WriteUnsigned(ref reader, byte.MaxValue, destination),
            DataType.UInt16 => WriteUnsigned(ref reader, ushort.MaxValue, destination),
            DataType.UInt32 => WriteUnsigned(ref reader, uint.MaxValue, destination),
            DataType.UInt64 => WriteUnsigned(ref reader, ulong.MaxValue, destination),
            DataType.Int8 => WriteSigned(ref reader, sbyte.MinValue, sbyte.MaxValue, destination),
            DataType.Int16 => WriteSigned(ref reader, short.MinValue, short.MaxValue, destination),
            DataType.Int32 => WriteSigned(ref reader, int.MinValue, int.MaxValue, destination),
            DataType.Int64 => WriteSigned(ref reader, long.MinValue, long.MaxValue, destination),
            DataType.Fp16 => WriteHalf(ref reader, destination),
            DataType.Fp32 => WriteSingle(ref reader, destination),
            DataType.Fp64 => WriteDouble(ref reader, destination),
            _ => false,
        };
        if (!ok)
        {
            throw new InferenceRequestException($"{what}: element {index} ({Raw(ref reader)}) is not a valid {type.ToProtocolName()}");
        }
    }

    private static bool WriteBool(ref Utf8JsonReader reader, Span<byte> destination)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.True:
                destination[0] = 1;
                return true;
            case JsonTokenType.False:
                destination[0] = 0;
                return true;
            default:
                return false;
        }
    }

    private static bool WriteUnsigned(ref Utf8JsonReader reader, ulong max, Span<byte> destination)
    {
        if (reader.TokenType != JsonTokenType.Number || !reader.TryGetUInt64(out var value) || value > max)
        {
            return false;
        }

        switch (destination.Length)
        {
            case 1: destination[0] = (byte)value; break;
            case 2: BinaryPrimitives.WriteUInt16LittleEndian(destination, (ushort)value); break;
            case 4: BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)value); break;
            default: BinaryPrimitives.WriteUInt64LittleEndian(destination, value); break;
        }

        return true;
    }

    private static bool WriteSigned(ref Utf8JsonReader reader, long min, long max, Span<byte> destination)
    {
        if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var value) || value < min || value > max)
        {
            return false;
        }

        switch (destination.Length)
        {
            case 1: destination[0] = (byte)(sbyte)value; break;
            case 2: BinaryPrimitives.WriteInt16LittleEndian(destination, (short)value); break;
            case 4: BinaryPrimitives.WriteInt32LittleEndian(destination, (int)value); break;
            default: BinaryPrimitives.WriteInt64LittleEndian(destination, value); break;
        }

        return true;
    }

    private static bool WriteSingle(ref Utf8JsonReader reader, Span<byte> destination)
    {
        // TryGetSingle parses the decimal text straight to the nearest float: no detour through double, so the bits
        // equal what a float parser on the client would produce.
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetSingle(out var value))
        {
            BinaryPrimitives.WriteSingleLittleEndian(destination, value);
            return true;
        }

        if (TryGetNonFinite(ref reader, out var special))
        {
            BinaryPrimitives.WriteSingleLittleEndian(destination, (float)special);
            return true;
        }

        return false;
    }

    private static bool WriteDouble(ref Utf8JsonReader reader, Span<byte> destination)
    {
        if ((reader.TokenType == JsonTokenType.Number && reader.TryGetDouble(out var value)) || TryGetNonFinite(ref reader, out value))
        {
            BinaryPrimitives.WriteDoubleLittleEndian(destination, value);
            return true;
        }

        return false;
    }

    private static bool WriteHalf(ref Utf8JsonReader reader, Span<byte> destination)
    {
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetDouble(out var value))
        {
            var half = (Half)value;
            if (Half.IsInfinity(half))
            {
                return false; // a finite number beyond ±65504 is a client mistake, not infinity
            }

            BinaryPrimitives.WriteHalfLittleEndian(destination, half);
            return true;
        }

        if (TryGetNonFinite(ref reader, out var special))
        {
            BinaryPrimitives.WriteHalfLittleEndian(destination, (Half)special);
            return true;
        }

        return false;
    }

    // JSON has no NaN or infinities; the writer emits them as these strings, so the reader accepts them back.
    private static bool TryGetNonFinite(ref Utf8JsonReader reader, out double value)
    {
        value = 0;
        if (reader.TokenType != JsonTokenType.String)
        {
            return false;
        }

        if (reader.ValueTextEquals("NaN"u8))
        {
            value = double.NaN;
        }
        else if (reader.ValueTextEquals("Infinity"u8))
        {
            value = double.PositiveInfinity;
        }
        else if (reader.ValueTextEquals("-Infinity"u8))
        {
            value = double.NegativeInfinity;
        }
        else
        {
            return false;
        }

        return true;
    }

    private static string Raw(ref Utf8JsonReader reader)
    {
        var text = reader.TokenType switch
        {
            JsonTokenType.String => "\"" + reader.GetString() + "\"",
            JsonTokenType.Null => "null",
            JsonTokenType.StartObject => "an object",
            _ => Encoding.UTF8.GetString(reader.HasValueSequence ? reader.ValueSequence.ToArray() : reader.ValueSpan),
        };
        return text.Length > 40 ? text[..40] + "…" : text;
    }

    /// <summary>"[2,3]".</summary>
    public static string FormatShape(IReadOnlyList<long> shape) =>
        "[" + string.Join(",", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "]";
}
