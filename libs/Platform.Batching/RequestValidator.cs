using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Platform.Inference.Protocol;
using Platform.OnnxRuntime;

namespace Platform.Batching;

/// <summary>Checks a request against the model's metadata; every message names the tensor and what is wrong.</summary>
public static class RequestValidator
{
    /// <summary>
    /// Validates <paramref name="work"/> and returns its inputs in model order.
    /// </summary>
    /// <exception cref="InvalidInferenceRequestException">A missing, unknown or repeated input; a datatype, shape or element-count mismatch; an unknown output.</exception>
    public static BatchInput[] Validate(IReadOnlyList<TensorMetadata> modelInputs, IReadOnlyList<TensorMetadata> modelOutputs, InferenceWork work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var ordered = new BatchInput[modelInputs.Count];
        foreach (var input in work.Inputs)
        {
            var index = IndexOf(modelInputs, input.Name);
            if (index < 0)
            {
                throw new InvalidInferenceRequestException(
                    $"unknown input '{input.Name}': the model's inputs are {string.Join(", ", modelInputs.Select(i => $"'{i.Name}'"))}");
            }
            if (ordered[index] is not null)
            {
                throw new InvalidInferenceRequestException($"input '{input.Name}' is given more than once");
            }
            Check(modelInputs[index], input);
            ordered[index] = input;
        }

        for (var i = 0; i < ordered.Length; i++)
        {
            if (ordered[i] is null)
            {
                var expected = modelInputs[i];
                throw new InvalidInferenceRequestException(
                    $"missing input '{expected.Name}': the model expects {TypeName(expected.ElementType)} {expected.FormatShape()}");
            }
        }

        if (work.Outputs is { Count: > 0 } outputs)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var output in outputs)
            {
                if (IndexOf(modelOutputs, output) < 0)
                {
                    throw new InvalidInferenceRequestException(
                        $"unknown output '{output}': the model's outputs are {string.Join(", ", modelOutputs.Select(o => $"'{o.Name}'"))}");
                }
                if (!seen.Add(output))
                {
                    throw new InvalidInferenceRequestException($"output '{output}' is requested more than once");
                }
            }
        }
        return ordered;
    }

    /// <summary>Decodes KServe BYTES data (each element a 4-byte little-endian length and its bytes) into strings.</summary>
    /// <exception cref="InvalidInferenceRequestException">The data is malformed or holds a different number of elements.</exception>
    public static string[] DecodeStrings(string name, ReadOnlySpan<byte> data, long expectedCount)
    {
        var result = new List<string>();
        var offset = 0;
        while (offset < data.Length)
        {
            if (data.Length - offset < 4)
            {
                throw new InvalidInferenceRequestException($"input '{name}': BYTES data is truncated at byte {offset} (a 4-byte length was expected)");
            }
            var length = BinaryPrimitives.ReadUInt32LittleEndian(data[offset..]);
            offset += 4;
            if (length > (uint)(data.Length - offset))
            {
                throw new InvalidInferenceRequestException($"input '{name}': BYTES element {result.Count} claims {length} bytes but only {data.Length - offset} remain");
            }
            var text = Encoding.UTF8.GetString(data.Slice(offset, (int)length));
            if (text.Contains('\0', StringComparison.Ordinal))
            {
                throw new InvalidInferenceRequestException($"input '{name}': BYTES element {result.Count} contains a NUL byte, which ONNX Runtime string tensors cannot hold");
            }
            result.Add(text);
            offset += (int)length;
        }
        if (result.Count != expectedCount)
        {
            throw new InvalidInferenceRequestException($"input '{name}': BYTES data holds {result.Count} elements but its shape needs {expectedCount}");
        }
        return [.. result];
    }

    /// <summary>Encodes strings as KServe BYTES data.</summary>
    public static byte[] EncodeStrings(IReadOnlyList<string> values)
    {
        var total = 0;
        foreach (var value in values)
        {
            total = checked(total + 4 + Encoding.UTF8.GetByteCount(value));
        }
        var buffer = new byte[total];
        var offset = 0;
        foreach (var value in values)
        {
            var written = Encoding.UTF8.GetBytes(value, buffer.AsSpan(offset + 4));
            BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(offset), (uint)written);
            offset += 4 + written;
        }
        return buffer;
    }

    /// <summary>KServe name of an element type ("FP32"), or the ONNX name when it has none.</summary>
    public static string TypeName(TensorElementType type) =>
        DataTypes.TryFromOnnxElementType((int)type, out var dataType) ? dataType.ToProtocolName() : type.ToString();

    /// <summary>Formats a concrete shape like <c>[2, 16]</c>.</summary>
    public static string FormatShape(IReadOnlyList<long> shape) =>
        "[" + string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "]";

    private static void Check(TensorMetadata expected, BatchInput input)
    {
        if (input.ElementType != expected.ElementType)
        {
            throw new InvalidInferenceRequestException(
                $"input '{input.Name}': datatype {TypeName(input.ElementType)} does not match the model's {TypeName(expected.ElementType)}");
        }
        var shape = input.Shape;
        foreach (var dim in shape)
        {
            if (dim < 0)
            {
                throw new InvalidInferenceRequestException($"input '{input.Name}': shape {FormatShape(shape)} has a negative dimension");
            }
        }
        if (shape.Length != expected.Rank)
        {
            throw new InvalidInferenceRequestException(
                $"input '{input.Name}': shape {FormatShape(shape)} has {shape.Length} dimensions but the model expects {expected.Rank}: {expected.FormatShape()}");
        }
        for (var d = 0; d < shape.Length; d++)
        {
            if (expected.Shape[d] >= 0 && expected.Shape[d] != shape[d])
            {
                throw new InvalidInferenceRequestException(
                    $"input '{input.Name}': shape {FormatShape(shape)} does not match the model's {expected.FormatShape()} (dimension {d} must be {expected.Shape[d]})");
            }
        }

        long count;
        try
        {
            count = shape.Aggregate(1L, (a, d) => checked(a * d));
        }
        catch (OverflowException)
        {
            throw new InvalidInferenceRequestException($"input '{input.Name}': shape {FormatShape(shape)} has too many elements");
        }

        if (input.ElementType == TensorElementType.String)
        {
            if (input.Strings is null || input.Strings.Count != count)
            {
                throw new InvalidInferenceRequestException(
                    $"input '{input.Name}': shape {FormatShape(shape)} needs {count} BYTES elements but {input.Strings?.Count ?? 0} were given");
            }
            return;
        }

        var size = input.ElementType.SizeInBytes();
        if (count > int.MaxValue / Math.Max(size, 1) || input.Data.Length != count * size)
        {
            throw new InvalidInferenceRequestException(
                $"input '{input.Name}': shape {FormatShape(shape)} needs {count} {TypeName(input.ElementType)} elements ({count * size} bytes) but {input.Data.Length} bytes ({input.Data.Length / (double)size:0.##} elements) were given");
        }
    }

    private static int IndexOf(IReadOnlyList<TensorMetadata> list, string name)
    {
        for (var i = 0; i < list.Count; i++)
        {
            if (string.Equals(list[i].Name, name, StringComparison.Ordinal))
            {
                return i;
            }
        }
        return -1;
    }
}
