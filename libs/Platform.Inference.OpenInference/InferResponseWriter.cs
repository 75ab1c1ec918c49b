using System.Buffers;
using System.Text.Json;
using Platform.Inference.Protocol;

namespace Platform.Inference.OpenInference;

/// <summary>Writes inference responses (server side): JSON, with binary output data appended when asked for.</summary>
public static class InferResponseWriter
{
    private static readonly JsonWriterOptions Options = new() { SkipValidation = true };

    /// <summary>Whether output <paramref name="name"/> goes out as binary: its own <c>binary_data</c>, else the request-wide <c>binary_data_output</c>.</summary>
    public static bool IsBinary(InferRequest request, string name)
    {
        ArgumentNullException.ThrowIfNull(request);
        foreach (var output in request.Outputs)
        {
            if (output.Name == name && output.BinaryData is { } binary)
            {
                return binary;
            }
        }

        return request.Parameters.BinaryDataOutput;
    }

    /// <summary>Writes the JSON response followed by the binary data of the outputs flagged in <paramref name="binary"/>.</summary>
    /// <param name="destination">Receives the whole body.</param>
    /// <param name="response">The response.</param>
    /// <param name="binary">Per output (same order): send its data as binary.</param>
    /// <returns>Length of the JSON part; equal to the whole body when nothing is binary.</returns>
    public static int Write(IBufferWriter<byte> destination, InferResponse response, IReadOnlyList<bool> binary)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(response);
        ArgumentNullException.ThrowIfNull(binary);
        int jsonLength;
        using (var writer = new Utf8JsonWriter(destination, Options))
        {
            writer.WriteStartObject();
            writer.WriteString("model_name"u8, response.ModelName);
            if (response.ModelVersion is not null)
            {
                writer.WriteString("model_version"u8, response.ModelVersion);
            }

            if (response.Id is not null)
            {
                writer.WriteString("id"u8, response.Id);
            }

            writer.WriteStartArray("outputs"u8);
            for (var i = 0; i < response.Outputs.Count; i++)
            {
                WriteTensorHeader(writer, response.Outputs[i], binary[i], nested: false);
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
            writer.Flush();
            jsonLength = checked((int)writer.BytesCommitted);
        }

        for (var i = 0; i < response.Outputs.Count; i++)
        {
            if (binary[i])
            {
                destination.Write(response.Outputs[i].Data.Span);
            }
        }

        return jsonLength;
    }

    /// <summary>Writes one tensor object: name, datatype, shape and either <c>data</c> or <c>parameters.binary_data_size</c>.</summary>
    internal static void WriteTensorHeader(Utf8JsonWriter writer, InferTensor tensor, bool binary, bool nested)
    {
        writer.WriteStartObject();
        writer.WriteString("name"u8, tensor.Name);
        writer.WriteString("datatype"u8, tensor.DataType.ToProtocolName());
        writer.WriteStartArray("shape"u8);
        foreach (var dimension in tensor.Shape)
        {
            writer.WriteNumberValue(dimension);
        }

        writer.WriteEndArray();
        if (binary)
        {
            writer.WriteStartObject("parameters"u8);
            writer.WriteNumber("binary_data_size"u8, tensor.Data.Length);
            writer.WriteEndObject();
        }
        else
        {
            writer.WritePropertyName("data"u8);
            TensorJsonEncoder.WriteData(writer, tensor, nested);
        }

        writer.WriteEndObject();
    }

    /// <summary>Writes <c>{"error": message}</c>.</summary>
    public static void WriteError(IBufferWriter<byte> destination, string message)
    {
        // Relaxed escaping: messages quote names ('x'), which the default encoder would turn into \u0027.
        using var writer = new Utf8JsonWriter(destination, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        writer.WriteStartObject();
        writer.WriteString("error"u8, message);
        writer.WriteEndObject();
    }
}
