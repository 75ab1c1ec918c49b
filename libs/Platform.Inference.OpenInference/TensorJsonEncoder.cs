using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using Platform.Inference.Protocol;

namespace Platform.Inference.OpenInference;

/// <summary>Writes raw tensor bytes as a JSON <c>data</c> array, flat or nested like the shape.</summary>
public static class TensorJsonEncoder
{
    /// <summary>Writes <paramref name="tensor"/>'s elements as a JSON array.</summary>
    /// <param name="writer">Destination.</param>
    /// <param name="tensor">Tensor whose data matches its shape.</param>
    /// <param name="nested">Nest arrays like the shape instead of one flat row-major array.</param>
    public static void WriteData(Utf8JsonWriter writer, InferTensor tensor, bool nested = false)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(tensor);
        var data = tensor.Data.Span;
        var offset = 0;
        long index = 0;
        if (!nested || tensor.Shape.Length <= 1)
        {
            writer.WriteStartArray();
            for (var i = 0L; i < tensor.ElementCount; i++)
            {
                WriteElement(writer, tensor.DataType, data, ref offset, ref index);
            }

            writer.WriteEndArray();
            return;
        }

        WriteNested(writer, tensor.DataType, tensor.Shape, 0, data, ref offset, ref index);
    }

    private static void WriteNested(Utf8JsonWriter writer, DataType type, long[] shape, int dimension, ReadOnlySpan<byte> data, ref int offset, ref long index)
    {
        writer.WriteStartArray();
        for (var i = 0L; i < shape[dimension]; i++)
        {
            if (dimension == shape.Length - 1)
            {
                WriteElement(writer, type, data, ref offset, ref index);
            }
            else
            {
                WriteNested(writer, type, shape, dimension + 1, data, ref offset, ref index);
            }
        }

        writer.WriteEndArray();
    }

    private static void WriteElement(Utf8JsonWriter writer, DataType type, ReadOnlySpan<byte> data, ref int offset, ref long index)
    {
        var at = data[offset..];
        switch (type)
        {
            case DataType.Bool: writer.WriteBooleanValue(at[0] != 0); break;
            case DataType.UInt8: writer.WriteNumberValue(at[0]); break;
            case DataType.UInt16: writer.WriteNumberValue(BinaryPrimitives.ReadUInt16LittleEndian(at)); break;
            case DataType.UInt32: writer.WriteNumberValue(BinaryPrimitives.ReadUInt32LittleEndian(at)); break;
            case DataType.UInt64: writer.WriteNumberValue(BinaryPrimitives.ReadUInt64LittleEndian(at)); break;
            case DataType.Int8: writer.WriteNumberValue((sbyte)at[0]); break;
            case DataType.Int16: writer.WriteNumberValue(BinaryPrimitives.ReadInt16LittleEndian(at)); break;
            case DataType.Int32: writer.WriteNumberValue(BinaryPrimitives.ReadInt32LittleEndian(at)); break;
            case DataType.Int64: writer.WriteNumberValue(BinaryPrimitives.ReadInt64LittleEndian(at)); break;
            case DataType.Fp16: WriteFloat(writer, (float)BinaryPrimitives.ReadHalfLittleEndian(at)); break;
            case DataType.Fp32: WriteFloat(writer, BinaryPrimitives.ReadSingleLittleEndian(at)); break;
            case DataType.Fp64: WriteDouble(writer, BinaryPrimitives.ReadDoubleLittleEndian(at)); break;
            case DataType.Bf16: WriteFloat(writer, BFloat16Bits.Read(at)); break;
            case DataType.Bytes:
                var value = BytesCodec.ReadElement(data, ref offset);
                if (Utf8.IsValid(value))
                {
                    writer.WriteStringValue(value);
                }
                else
                {
                    // JSON strings are text; bytes that are not UTF-8 need the binary extension to survive intact.
                    writer.WriteStringValue(Encoding.UTF8.GetString(value));
                }

                index++;
                return;
        }

        offset += type.ElementSize();
        index++;
    }

    // JSON has no NaN or infinities: write them as the strings the reader accepts back. Finite values are written in
    // their shortest round-trip form, so parsing them back as float gives the same bits.
    private static void WriteFloat(Utf8JsonWriter writer, float value)
    {
        if (float.IsFinite(value))
        {
            writer.WriteNumberValue(value);
        }
        else
        {
            writer.WriteStringValue(float.IsNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity");
        }
    }

    private static void WriteDouble(Utf8JsonWriter writer, double value)
    {
        if (double.IsFinite(value))
        {
            writer.WriteNumberValue(value);
        }
        else
        {
            writer.WriteStringValue(double.IsNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity");
        }
    }
}
