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
                        throw new InferenceRequestException($"{what}: 'data' mixes values and arrays; use a flat array or arrays nested like the shape {InferRequestValidator.FormatShape(shape)}");
                    }

                    lengths[depth]++;
                    depth++;
                    if (depth >= shape.Length)
                    {
                        throw new InferenceRequestException($"{what}: nested 'data' is deeper than the shape {InferRequestValidator.FormatShape(shape)}");
                    }

                    lengths[depth] = 0;
                    first = false;
                    break;

                case JsonTokenType.EndArray:
                    if (nested && lengths[depth] != shape[depth])
                    {
                        throw new InferenceRequestException(
                            $"{what}: nested 'data' does not match the shape {InferRequestValidator.FormatShape(shape)}: dimension {depth} has {lengths[depth]} items, expected {shape[depth]}");
                    }

                    if (depth == 0)
                    {
                        if (index != expectedCount)
                        {
                            throw new InferenceRequestException($"{what}: shape {InferRequestValidator.FormatShape(shape)} needs {expectedCount} elements but 'data' has {index}");
                        }

                        return fixedBuffer ?? strings?.WrittenSpan.ToArray() ?? [];
                    }

                    depth--;
                    break;

                default:
                    if (nested && depth != shape.Length - 1)
                    {
                        throw new InferenceRequestException(
                            $"{what}: nested 'data' does not match the shape {InferRequestValidator.FormatShape(shape)}: a value appears at depth {depth}, values belong at depth {shape.Length - 1}");
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
        var outcome = type switch
        {
            DataType.Bool => WriteBool(ref reader, destination),
            DataType.UInt8 or DataType.UInt16 or DataType.UInt32 or DataType.UInt64 => WriteUnsigned(ref reader, type, destination),
            DataType.Int8 or DataType.Int16 or DataType.Int32 or DataType.Int64 => WriteSigned(ref reader, type, destination),
            DataType.Fp16 or DataType.Bf16 or DataType.Fp32 or DataType.Fp64 => WriteFloat(ref reader, type, destination),
            _ => Outcome.Invalid,
        };
        switch (outcome)
        {
            case Outcome.Invalid:
                throw new InferenceRequestException($"{what}: element {index} ({Raw(ref reader)}) is not a valid {type.ToProtocolName()}");
            case Outcome.OutOfRange:
                throw new InferenceRequestException($"{what}: {TensorElements.OutOfRange(index, Raw(ref reader), type)}");
        }
    }

    private static Outcome WriteBool(ref Utf8JsonReader reader, Span<byte> destination)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.True:
                destination[0] = 1;
                return Outcome.Written;
            case JsonTokenType.False:
                destination[0] = 0;
                return Outcome.Written;
            default:
                return Outcome.Invalid;
        }
    }

    private static Outcome WriteUnsigned(ref Utf8JsonReader reader, DataType type, Span<byte> destination)
    {
        if (reader.TokenType != JsonTokenType.Number)
        {
            return Outcome.Invalid;
        }

        if (reader.TryGetUInt64(out var value))
        {
            return TensorElements.TryWriteUnsigned(type, value, destination) ? Outcome.Written : Outcome.OutOfRange;
        }

        // A negative integer, or one beyond 64 bits, is an integer out of range; a fraction is not an integer at all.
        return IsInteger(ref reader) ? Outcome.OutOfRange : Outcome.Invalid;
    }

    private static Outcome WriteSigned(ref Utf8JsonReader reader, DataType type, Span<byte> destination)
    {
        if (reader.TokenType != JsonTokenType.Number)
        {
            return Outcome.Invalid;
        }

        if (reader.TryGetInt64(out var value))
        {
            return TensorElements.TryWriteInteger(type, value, destination) ? Outcome.Written : Outcome.OutOfRange;
        }

        return IsInteger(ref reader) ? Outcome.OutOfRange : Outcome.Invalid;
    }

    private static bool IsInteger(ref Utf8JsonReader reader)
    {
        var text = reader.HasValueSequence ? reader.ValueSequence.ToArray() : reader.ValueSpan;
        var digits = text.Length > 0 && text[0] == (byte)'-' ? text[1..] : text;
        return digits.Length > 0 && digits.IndexOfAnyExceptInRange((byte)'0', (byte)'9') < 0;
    }

    private static Outcome WriteFloat(ref Utf8JsonReader reader, DataType type, Span<byte> destination)
    {
        if (reader.TokenType == JsonTokenType.Number)
        {
            var text = reader.HasValueSequence ? reader.ValueSequence.ToArray() : reader.ValueSpan;
            // Each type parses the decimal text straight to its nearest value (no detour through a wider type that
            // could round twice), so the bits equal what a parser of that type on the client would produce. IEEE
            // parsing turns a finite number beyond the type's range into infinity: that is the client's mistake.
            switch (type)
            {
                case DataType.Fp32:
                    if (!float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var single))
                    {
                        return Outcome.Invalid;
                    }

                    BinaryPrimitives.WriteSingleLittleEndian(destination, single);
                    return float.IsInfinity(single) ? Outcome.OutOfRange : Outcome.Written;
                case DataType.Fp16:
                    if (!Half.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var half))
                    {
                        return Outcome.Invalid;
                    }

                    BinaryPrimitives.WriteHalfLittleEndian(destination, half);
                    return Half.IsInfinity(half) ? Outcome.OutOfRange : Outcome.Written;
                default:
                    if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var number))
                    {
                        return Outcome.Invalid;
                    }

                    return !double.IsInfinity(number) && TensorElements.TryWriteDouble(type, number, destination) ? Outcome.Written : Outcome.OutOfRange;
            }
        }

        if (TryGetNonFinite(ref reader, out var special))
        {
            TensorElements.TryWriteDouble(type, special, destination);
            return Outcome.Written;
        }

        return Outcome.Invalid;
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

    private enum Outcome
    {
        Written,
        Invalid,
        OutOfRange,
    }
}
