using System.Buffers;
using System.Text.Json;
using Platform.Inference.Protocol;

namespace Platform.Inference.OpenInference;

/// <summary>How a client sends input data.</summary>
public enum TensorEncoding
{
    /// <summary>JSON <c>data</c>, one flat row-major array.</summary>
    JsonFlat,

    /// <summary>JSON <c>data</c>, arrays nested like the shape.</summary>
    JsonNested,

    /// <summary>Binary tensor extension: raw bytes after the JSON header.</summary>
    Binary,
}

/// <summary>The client side of the protocol: writes requests and reads responses (used by tests, the benchmark and .NET callers).</summary>
public static class InferClientCodec
{
    private static readonly JsonWriterOptions Options = new() { SkipValidation = true };

    /// <summary>Writes a request body.</summary>
    /// <returns>Length of the JSON part: send it as <c>Inference-Header-Content-Length</c> when it is shorter than the body.</returns>
    public static int WriteRequest(
        IBufferWriter<byte> destination,
        IReadOnlyList<InferTensor> inputs,
        TensorEncoding encoding,
        IReadOnlyList<RequestedOutput>? outputs = null,
        InferRequestParameters? parameters = null,
        string? id = null)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(inputs);
        int jsonLength;
        using (var writer = new Utf8JsonWriter(destination, Options))
        {
            writer.WriteStartObject();
            if (id is not null)
            {
                writer.WriteString("id"u8, id);
            }

            writer.WriteStartArray("inputs"u8);
            foreach (var input in inputs)
            {
                InferResponseWriter.WriteTensorHeader(writer, input, encoding == TensorEncoding.Binary, encoding == TensorEncoding.JsonNested);
            }

            writer.WriteEndArray();
            if (outputs is { Count: > 0 })
            {
                writer.WriteStartArray("outputs"u8);
                foreach (var output in outputs)
                {
                    writer.WriteStartObject();
                    writer.WriteString("name"u8, output.Name);
                    if (output.BinaryData is { } binary)
                    {
                        writer.WriteStartObject("parameters"u8);
                        writer.WriteBoolean("binary_data"u8, binary);
                        writer.WriteEndObject();
                    }

                    writer.WriteEndObject();
                }

                writer.WriteEndArray();
            }

            if (parameters is not null && parameters != InferRequestParameters.None)
            {
                writer.WriteStartObject("parameters"u8);
                if (parameters.BinaryDataOutput)
                {
                    writer.WriteBoolean("binary_data_output"u8, true);
                }

                if (parameters.Cache is { } cache)
                {
                    writer.WriteBoolean("cache"u8, cache);
                }

                if (parameters.TimeoutMicroseconds is { } timeout)
                {
                    writer.WriteNumber("timeout"u8, timeout);
                }

                if (parameters.EntityId is { } entity)
                {
                    writer.WriteString("entity_id"u8, entity);
                }

                writer.WriteEndObject();
            }

            writer.WriteEndObject();
            writer.Flush();
            jsonLength = checked((int)writer.BytesCommitted);
        }

        if (encoding == TensorEncoding.Binary)
        {
            foreach (var input in inputs)
            {
                destination.Write(input.Data.Span);
            }
        }

        return jsonLength;
    }

    /// <summary>Reads a successful response body; binary outputs reference <paramref name="body"/>.</summary>
    /// <param name="body">Whole HTTP body.</param>
    /// <param name="jsonLength">The <c>Inference-Header-Content-Length</c> response header; null when absent.</param>
    /// <exception cref="InferenceRequestException">The body is not a well-formed response (or is an error body).</exception>
    public static InferResponse ReadResponse(ReadOnlyMemory<byte> body, int? jsonLength = null)
    {
        var json = jsonLength is { } length ? body[..length] : body;
        var reader = new Utf8JsonReader(json.Span);
        string? modelName = null;
        string? version = null;
        string? id = null;
        var pending = new List<InferRequestReader.PendingInput>();
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                throw new InferenceRequestException("the response must be a JSON object");
            }

            while (InferRequestReader.NextProperty(ref reader))
            {
                if (reader.ValueTextEquals("model_name"u8))
                {
                    reader.Read();
                    modelName = reader.GetString();
                }
                else if (reader.ValueTextEquals("model_version"u8))
                {
                    reader.Read();
                    version = reader.GetString();
                }
                else if (reader.ValueTextEquals("id"u8))
                {
                    reader.Read();
                    id = reader.GetString();
                }
                else if (reader.ValueTextEquals("error"u8))
                {
                    reader.Read();
                    throw new InferenceRequestException($"the server answered an error: {reader.GetString()}");
                }
                else if (reader.ValueTextEquals("outputs"u8))
                {
                    reader.Read();
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        pending.Add(InferRequestReader.ReadInput(ref reader, pending.Count, "output"));
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
        }
        catch (JsonException ex)
        {
            throw InferRequestReader.Malformed(ex);
        }

        var outputs = new InferTensor[pending.Count];
        var cursor = jsonLength ?? body.Length;
        for (var i = 0; i < outputs.Length; i++)
        {
            var output = pending[i];
            var what = $"output '{output.Name}'";
            var count = InferRequestValidator.ElementCount(what, output.Shape);
            ReadOnlyMemory<byte> data;
            if (output.BinarySize is { } size)
            {
                if (size > body.Length - cursor)
                {
                    throw new InferenceRequestException($"{what}: binary_data_size {size} runs past the end of the body");
                }

                data = body.Slice(cursor, (int)size);
                cursor += (int)size;
            }
            else
            {
                data = TensorJsonDecoder.Decode(json.Span[output.DataOffset..], what, output.DataType, output.Shape, count);
            }

            outputs[i] = new InferTensor(output.Name, output.DataType, output.Shape, data);
        }

        return new InferResponse(modelName ?? string.Empty, version, id, outputs);
    }
}
