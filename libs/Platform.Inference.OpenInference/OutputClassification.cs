using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Platform.Inference.Protocol;

namespace Platform.Inference.OpenInference;

/// <summary>
/// Triton's classification extension: an output requested with <c>parameters.classification</c> = N comes back as the
/// N highest-valued elements of each batch row, highest first (ties: lower index first), as BYTES strings
/// <c>"&lt;value&gt;:&lt;index&gt;"</c> of shape [rows, N] (or [N] when the output has no batch dimension), instead of
/// the tensor the model produced. Platform registers no label files, so no <c>:&lt;label&gt;</c> part is ever added.
/// </summary>
public static class OutputClassification
{
    /// <summary>Whether any requested output asks for classification.</summary>
    public static bool Requested(IReadOnlyList<RequestedOutput> outputs)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        for (var i = 0; i < outputs.Count; i++)
        {
            if (outputs[i].Classification is not null)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Refuses, before anything runs, classification of an output whose datatype has no order (BOOL, BYTES).</summary>
    /// <exception cref="InferenceRequestException">An output asked for classification is not numeric.</exception>
    public static void Check(IReadOnlyList<RequestedOutput> outputs, ModelSignature signature)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(signature);
        foreach (var requested in outputs)
        {
            if (requested.Classification is not null && signature.Outputs.FirstOrDefault(o => o.Name == requested.Name) is { } spec)
            {
                CheckNumeric(requested.Name, spec.DataType);
            }
        }
    }

    /// <summary>
    /// <paramref name="outputs"/> with each output that <paramref name="requested"/> asks to classify replaced by its
    /// classification. The batch dimension is dimension 0 when the model declares it dynamic (-1) for the output.
    /// </summary>
    /// <exception cref="InferenceRequestException">An output is not numeric, or has fewer classes than asked for.</exception>
    public static IReadOnlyList<InferTensor> Apply(IReadOnlyList<RequestedOutput> requested, IReadOnlyList<InferTensor> outputs, ModelSignature signature)
    {
        ArgumentNullException.ThrowIfNull(requested);
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(signature);
        var result = new InferTensor[outputs.Count];
        for (var i = 0; i < outputs.Count; i++)
        {
            var output = outputs[i];
            var count = requested.FirstOrDefault(r => r.Name == output.Name)?.Classification;
            var batched = signature.Outputs.FirstOrDefault(o => o.Name == output.Name)?.Shape is [-1, ..];
            result[i] = count is { } n ? Classify(output, n, batched) : output;
        }

        return result;
    }

    private static InferTensor Classify(InferTensor output, int count, bool batched)
    {
        CheckNumeric(output.Name, output.DataType);
        var rows = batched && output.Shape.Length > 0 ? output.Shape[0] : 1;
        var elements = output.ElementCount;
        var classes = rows == 0 ? 0 : elements / rows;
        if (count > classes)
        {
            throw new InferenceRequestException(
                $"output '{output.Name}': parameters.classification asks for {count} classes but the output has {classes} per {(batched ? "batch row" : "tensor")}");
        }

        var size = output.DataType.ElementSize();
        var data = output.Data.Span;
        var values = new double[classes];
        var order = new int[classes];
        var buffer = new ArrayBufferWriter<byte>((int)(rows * count * 16));
        for (var row = 0; row < rows; row++)
        {
            var rowData = data.Slice((int)(row * classes * size), (int)(classes * size));
            for (var c = 0; c < classes; c++)
            {
                values[c] = Value(output.DataType, rowData.Slice(c * size, size));
                order[c] = c;
            }

            Array.Sort(order, (a, b) => values[a] == values[b] || (double.IsNaN(values[a]) && double.IsNaN(values[b]))
                ? a.CompareTo(b)
                : double.IsNaN(values[a]) ? 1 : double.IsNaN(values[b]) ? -1 : values[b].CompareTo(values[a]));
            for (var k = 0; k < count; k++)
            {
                var index = order[k];
                var text = $"{Text(output.DataType, rowData.Slice(index * size, size))}:{index.ToString(CultureInfo.InvariantCulture)}";
                BytesCodec.Write(buffer, Encoding.UTF8.GetBytes(text));
            }
        }

        long[] shape = batched ? [rows, count] : [count];
        return new InferTensor(output.Name, DataType.Bytes, shape, buffer.WrittenMemory.ToArray());
    }

    private static void CheckNumeric(string name, DataType type)
    {
        if (type is DataType.Bool or DataType.Bytes)
        {
            throw new InferenceRequestException(
                $"output '{name}': parameters.classification needs a numeric output, and '{name}' is {type.ToProtocolName()}");
        }
    }

    private static double Value(DataType type, ReadOnlySpan<byte> element) => type switch
    {
        DataType.UInt8 => element[0],
        DataType.Int8 => (sbyte)element[0],
        DataType.UInt16 => BinaryPrimitives.ReadUInt16LittleEndian(element),
        DataType.Int16 => BinaryPrimitives.ReadInt16LittleEndian(element),
        DataType.UInt32 => BinaryPrimitives.ReadUInt32LittleEndian(element),
        DataType.Int32 => BinaryPrimitives.ReadInt32LittleEndian(element),
        DataType.UInt64 => BinaryPrimitives.ReadUInt64LittleEndian(element),
        DataType.Int64 => BinaryPrimitives.ReadInt64LittleEndian(element),
        DataType.Fp16 => (double)BinaryPrimitives.ReadHalfLittleEndian(element),
        DataType.Bf16 => BFloat16Bits.Read(element),
        DataType.Fp32 => BinaryPrimitives.ReadSingleLittleEndian(element),
        DataType.Fp64 => BinaryPrimitives.ReadDoubleLittleEndian(element),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };

    // Integers exactly; floats with six decimals, as Triton prints them (C++ std::to_string).
    private static string Text(DataType type, ReadOnlySpan<byte> element) => type switch
    {
        DataType.UInt64 => BinaryPrimitives.ReadUInt64LittleEndian(element).ToString(CultureInfo.InvariantCulture),
        DataType.Int64 => BinaryPrimitives.ReadInt64LittleEndian(element).ToString(CultureInfo.InvariantCulture),
        DataType.Fp16 or DataType.Bf16 or DataType.Fp32 or DataType.Fp64 => Value(type, element).ToString("F6", CultureInfo.InvariantCulture),
        _ => Value(type, element).ToString(CultureInfo.InvariantCulture),
    };
}
