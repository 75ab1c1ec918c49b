using System.Globalization;
using System.Text.Json;
using Platform.Inference.Protocol;

namespace Platform.Inference.OpenInference;

/// <summary>
/// Decodes <c>POST /v2/models/{name}/infer</c> bodies: the JSON request and, with the binary tensor extension, the
/// binary tensor data after it. Binary inputs are slices of the body (no copy); JSON <c>data</c> is written straight
/// into one byte buffer per input.
/// </summary>
public static class InferRequestReader
{
    /// <summary>Header giving the length of the JSON part when binary tensor data follows it.</summary>
    public const string HeaderContentLengthHeader = "Inference-Header-Content-Length";

    /// <summary>Parses the <see cref="HeaderContentLengthHeader"/> value against the body length.</summary>
    /// <returns>The JSON length, or null when the header is absent (the whole body is JSON).</returns>
    /// <exception cref="InferenceRequestException">The value is not an integer between 0 and the body length.</exception>
    public static int? ParseHeaderContentLength(string? value, long bodyLength)
    {
        if (value is null)
        {
            return null;
        }

        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var length) || length > bodyLength)
        {
            throw new InferenceRequestException(
                $"{HeaderContentLengthHeader} '{value}' must be an integer between 0 and the body length ({bodyLength.ToString(CultureInfo.InvariantCulture)})");
        }

        return length;
    }

    /// <summary>Decodes a request body.</summary>
    /// <param name="body">The whole HTTP body. Binary inputs of the result reference it: keep it alive while they are used.</param>
    /// <param name="jsonLength">The <see cref="HeaderContentLengthHeader"/> value; null when absent.</param>
    /// <exception cref="InferenceRequestException">Malformed JSON or a tensor that contradicts itself.</exception>
    public static InferRequest Read(ReadOnlyMemory<byte> body, int? jsonLength = null)
    {
        if (jsonLength is < 0 || jsonLength > body.Length)
        {
            throw new InferenceRequestException(
                $"{HeaderContentLengthHeader} must be between 0 and the body length ({body.Length.ToString(CultureInfo.InvariantCulture)})");
        }

        var json = jsonLength is { } length ? body[..length] : body;
        var reader = new Utf8JsonReader(json.Span, new JsonReaderOptions { MaxDepth = 64 });
        Header header;
        try
        {
            header = ReadHeader(ref reader);
        }
        catch (JsonException ex)
        {
            throw Malformed(ex);
        }

        var inputs = new InferTensor[header.Inputs.Count];
        var binaryCursor = jsonLength ?? body.Length;
        for (var i = 0; i < inputs.Length; i++)
        {
            var input = header.Inputs[i];
            var what = $"input '{input.Name}'";
            var count = InferRequestValidator.ElementCount(what, input.Shape);
            ReadOnlyMemory<byte> data;
            if (input.BinarySize is { } size)
            {
                if (jsonLength is null)
                {
                    throw new InferenceRequestException($"{what}: parameters.binary_data_size needs the {HeaderContentLengthHeader} header");
                }

                if (size > body.Length - binaryCursor)
                {
                    throw new InferenceRequestException(
                        $"{what}: binary_data_size {size} runs past the end of the body ({body.Length - binaryCursor} bytes of binary data left)");
                }

                data = body.Slice(binaryCursor, (int)size);
                binaryCursor += (int)size;
                InferRequestValidator.CheckData(what, "binary_data_size", input.DataType, input.Shape, data.Span);
            }
            else
            {
                try
                {
                    data = TensorJsonDecoder.Decode(json.Span[input.DataOffset..], what, input.DataType, input.Shape, count);
                }
                catch (JsonException ex)
                {
                    throw Malformed(ex);
                }
            }

            inputs[i] = new InferTensor(input.Name, input.DataType, input.Shape, data);
        }

        if (binaryCursor != body.Length)
        {
            throw new InferenceRequestException(
                $"the body has {body.Length - binaryCursor} bytes after the JSON header that no input's binary_data_size accounts for");
        }

        return new InferRequest(header.Id, inputs, header.Outputs, header.Parameters);
    }

    internal static InferenceRequestException Malformed(JsonException ex)
    {
        // The reader's message ends with its own "LineNumber: 0 | BytePositionInLine: 12." which reads 0-based; restate it 1-based.
        var reason = ex.Message;
        var cut = reason.IndexOf(" LineNumber:", StringComparison.Ordinal);
        if (cut > 0)
        {
            reason = reason[..cut];
        }

        var line = (ex.LineNumber ?? 0) + 1;
        var column = (ex.BytePositionInLine ?? 0) + 1;
        return new InferenceRequestException($"malformed JSON at line {line}, byte {column}: {reason}", ex);
    }

    private static Header ReadHeader(ref Utf8JsonReader reader)
    {
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new InferenceRequestException("the request must be a JSON object");
        }

        string? id = null;
        List<PendingInput>? inputs = null;
        var outputs = new List<RequestedOutput>();
        var parameters = InferRequestParameters.None;
        while (NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("id"u8))
            {
                reader.Read();
                id = reader.TokenType == JsonTokenType.String ? reader.GetString()
                    : throw new InferenceRequestException("'id' must be a string");
            }
            else if (reader.ValueTextEquals("inputs"u8))
            {
                reader.Read();
                inputs = ReadInputs(ref reader);
            }
            else if (reader.ValueTextEquals("outputs"u8))
            {
                reader.Read();
                ReadOutputs(ref reader, outputs);
            }
            else if (reader.ValueTextEquals("parameters"u8))
            {
                reader.Read();
                parameters = ReadRequestParameters(ref reader);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (reader.Read())
        {
            throw new InferenceRequestException("unexpected content after the JSON object (binary tensor data needs the Inference-Header-Content-Length header)");
        }

        if (inputs is null)
        {
            throw new InferenceRequestException("the request has no 'inputs'");
        }

        return new Header(id, inputs, outputs, parameters);
    }

    private static List<PendingInput> ReadInputs(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new InferenceRequestException("'inputs' must be an array");
        }

        var inputs = new List<PendingInput>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            var input = ReadInput(ref reader, inputs.Count);
            foreach (var existing in inputs)
            {
                if (existing.Name == input.Name)
                {
                    throw new InferenceRequestException($"input '{input.Name}' appears more than once");
                }
            }

            inputs.Add(input);
        }

        return inputs;
    }

    internal static PendingInput ReadInput(ref Utf8JsonReader reader, int position, string kind = "input")
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new InferenceRequestException($"{kind}s[{position}] must be an object");
        }

        string? name = null;
        string? datatype = null;
        long[]? shape = null;
        var dataOffset = -1;
        long? binarySize = null;
        while (NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("name"u8))
            {
                reader.Read();
                name = reader.TokenType == JsonTokenType.String ? reader.GetString()
                    : throw new InferenceRequestException($"{kind}s[{position}]: 'name' must be a string");
            }
            else if (reader.ValueTextEquals("datatype"u8))
            {
                reader.Read();
                datatype = reader.TokenType == JsonTokenType.String ? reader.GetString()
                    : throw new InferenceRequestException($"{Describe(name, position, kind)}: 'datatype' must be a string");
            }
            else if (reader.ValueTextEquals("shape"u8))
            {
                reader.Read();
                shape = ReadShape(ref reader, Describe(name, position, kind));
            }
            else if (reader.ValueTextEquals("data"u8))
            {
                reader.Read();
                // The datatype and shape may come after the data: remember where it starts, decode it once both are known.
                dataOffset = checked((int)reader.TokenStartIndex);
                reader.Skip();
            }
            else if (reader.ValueTextEquals("parameters"u8))
            {
                reader.Read();
                binarySize = ReadInputParameters(ref reader, Describe(name, position, kind));
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (name is null)
        {
            throw new InferenceRequestException($"{kind}s[{position}] has no 'name'");
        }

        var what = $"{kind} '{name}'";
        if (datatype is null)
        {
            throw new InferenceRequestException($"{what} has no 'datatype'");
        }

        if (!DataTypes.TryParse(datatype, out var type))
        {
            throw new InferenceRequestException($"{what}: unknown datatype '{datatype}' (expected one of {DataTypes.AllNames})");
        }

        if (shape is null)
        {
            throw new InferenceRequestException($"{what} has no 'shape'");
        }

        if (dataOffset < 0 && binarySize is null)
        {
            throw new InferenceRequestException($"{what} has neither 'data' nor parameters.binary_data_size");
        }

        if (dataOffset >= 0 && binarySize is not null)
        {
            throw new InferenceRequestException($"{what} has both 'data' and parameters.binary_data_size");
        }

        return new PendingInput(name, type, shape, dataOffset, binarySize);
    }

    private static long[] ReadShape(ref Utf8JsonReader reader, string what)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new InferenceRequestException($"{what}: 'shape' must be an array of non-negative integers");
        }

        var shape = new List<long>(4);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var dimension) || dimension < 0)
            {
                throw new InferenceRequestException($"{what}: 'shape' must be an array of non-negative integers");
            }

            shape.Add(dimension);
        }

        return [.. shape];
    }

    private static long? ReadInputParameters(ref Utf8JsonReader reader, string what)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new InferenceRequestException($"{what}: 'parameters' must be an object");
        }

        long? binarySize = null;
        while (NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("binary_data_size"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var size) || size < 0)
                {
                    throw new InferenceRequestException($"{what}: parameters.binary_data_size must be a non-negative integer");
                }

                binarySize = size;
            }
            else
            {
                UnsupportedExtensions.Refuse(what, reader.GetString()!);
                reader.Read();
                reader.Skip();
            }
        }

        return binarySize;
    }

    private static void ReadOutputs(ref Utf8JsonReader reader, List<RequestedOutput> outputs)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new InferenceRequestException("'outputs' must be an array");
        }

        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            var position = outputs.Count;
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw new InferenceRequestException($"outputs[{position}] must be an object");
            }

            string? name = null;
            bool? binary = null;
            int? classification = null;
            while (NextProperty(ref reader))
            {
                if (reader.ValueTextEquals("name"u8))
                {
                    reader.Read();
                    name = reader.TokenType == JsonTokenType.String ? reader.GetString()
                        : throw new InferenceRequestException($"outputs[{position}]: 'name' must be a string");
                }
                else if (reader.ValueTextEquals("parameters"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.StartObject)
                    {
                        throw new InferenceRequestException($"outputs[{position}]: 'parameters' must be an object");
                    }

                    while (NextProperty(ref reader))
                    {
                        if (reader.ValueTextEquals("binary_data"u8))
                        {
                            reader.Read();
                            binary = ReadBool(ref reader, $"outputs[{position}]: parameters.binary_data");
                        }
                        else if (reader.ValueTextEquals("classification"u8))
                        {
                            reader.Read();
                            classification = reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var count) && count > 0
                                ? count
                                : throw new InferenceRequestException($"outputs[{position}]: parameters.classification must be a positive integer (the number of classes)");
                        }
                        else
                        {
                            UnsupportedExtensions.Refuse($"outputs[{position}]", reader.GetString()!);
                            reader.Read();
                            reader.Skip();
                        }
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            if (name is null)
            {
                throw new InferenceRequestException($"outputs[{position}] has no 'name'");
            }

            if (outputs.Exists(o => o.Name == name))
            {
                throw new InferenceRequestException($"output '{name}' is requested more than once");
            }

            outputs.Add(new RequestedOutput(name, binary, classification));
        }
    }

    private static InferRequestParameters ReadRequestParameters(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new InferenceRequestException("'parameters' must be an object");
        }

        var parameters = InferRequestParameters.None;
        while (NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("binary_data_output"u8))
            {
                reader.Read();
                parameters = parameters with { BinaryDataOutput = ReadBool(ref reader, "parameters.binary_data_output") };
            }
            else if (reader.ValueTextEquals("cache"u8))
            {
                reader.Read();
                parameters = parameters with { Cache = ReadBool(ref reader, "parameters.cache") };
            }
            else if (reader.ValueTextEquals("timeout"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var micros) || micros <= 0)
                {
                    throw new InferenceRequestException("parameters.timeout must be a positive integer (microseconds)");
                }

                parameters = parameters with { TimeoutMicroseconds = micros };
            }
            else if (reader.ValueTextEquals("entity_id"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.String || reader.GetString() is not { Length: > 0 } entity)
                {
                    throw new InferenceRequestException("parameters.entity_id must be a non-empty string (the entity whose features fill bound inputs)");
                }

                parameters = parameters with { EntityId = entity };
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return parameters;
    }

    private static bool ReadBool(ref Utf8JsonReader reader, string what) => reader.TokenType switch
    {
        JsonTokenType.True => true,
        JsonTokenType.False => false,
        _ => throw new InferenceRequestException($"{what} must be true or false"),
    };

    /// <summary>Advances to the next property name of the current object; false at its end.</summary>
    internal static bool NextProperty(ref Utf8JsonReader reader)
    {
        reader.Read();
        return reader.TokenType == JsonTokenType.PropertyName;
    }

    private static string Describe(string? name, int position, string kind) => name is null ? $"{kind}s[{position}]" : $"{kind} '{name}'";

    internal sealed record PendingInput(string Name, DataType DataType, long[] Shape, int DataOffset, long? BinarySize);

    private sealed record Header(string? Id, List<PendingInput> Inputs, List<RequestedOutput> Outputs, InferRequestParameters Parameters);
}
