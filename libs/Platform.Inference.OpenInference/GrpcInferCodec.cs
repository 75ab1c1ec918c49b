using System.Buffers.Binary;
using System.Globalization;
using Google.Protobuf;
using Google.Protobuf.Collections;
using Platform.Inference.OpenInference.Grpc;
using Platform.Inference.Protocol;

namespace Platform.Inference.OpenInference;

/// <summary>
/// The gRPC form of the protocol (<c>inference.GRPCInferenceService</c>): <see cref="ModelInferRequest"/> to and from
/// <see cref="InferRequest"/>, typed contents and <c>raw_input_contents</c> alike, with the same checks and messages as
/// the REST codecs. Raw contents are referenced, not copied.
/// </summary>
public static class GrpcInferCodec
{
    /// <summary>Decodes a request (server side).</summary>
    /// <exception cref="InferenceRequestException">A malformed tensor, contents that contradict the datatype or shape, a value out of its type's range, or a bad parameter.</exception>
    public static InferRequest ReadRequest(ModelInferRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var raw = request.RawInputContents;
        if (raw.Count > 0 && raw.Count != request.Inputs.Count)
        {
            throw new InferenceRequestException(
                $"raw_input_contents has {raw.Count} entries but the request has {request.Inputs.Count} inputs (one entry per input, in order)");
        }

        var inputs = new InferTensor[request.Inputs.Count];
        for (var i = 0; i < inputs.Length; i++)
        {
            var input = request.Inputs[i];
            if (string.IsNullOrEmpty(input.Name))
            {
                throw new InferenceRequestException($"inputs[{i}] has no name");
            }

            var what = $"input '{input.Name}'";
            if (input.Parameters.Count > 0)
            {
                foreach (var parameter in input.Parameters.Keys)
                {
                    UnsupportedExtensions.Refuse(what, parameter);
                }
            }

            for (var j = 0; j < i; j++)
            {
                if (inputs[j].Name == input.Name)
                {
                    throw new InferenceRequestException($"input '{input.Name}' appears more than once");
                }
            }

            if (!DataTypes.TryParse(input.Datatype, out var type))
            {
                throw new InferenceRequestException(input.Datatype.Length == 0
                    ? $"{what} has no datatype"
                    : $"{what}: unknown datatype '{input.Datatype}' (expected one of {DataTypes.AllNames})");
            }

            var shape = input.Shape.ToArray();
            var count = InferRequestValidator.ElementCount(what, shape);
            ReadOnlyMemory<byte> data;
            if (raw.Count > 0)
            {
                if (input.Contents is not null && HasAny(input.Contents))
                {
                    throw new InferenceRequestException($"{what} has contents, but the request uses raw_input_contents (it is one or the other for all inputs)");
                }

                data = raw[i].Memory;
                InferRequestValidator.CheckData(what, $"raw_input_contents[{i}]", type, shape, data.Span);
            }
            else if (input.Contents is { } contents && HasAny(contents))
            {
                data = ReadContents(what, type, shape, count, contents);
            }
            else if (count == 0)
            {
                data = ReadOnlyMemory<byte>.Empty;
            }
            else
            {
                throw new InferenceRequestException($"{what} has neither contents nor raw_input_contents");
            }

            inputs[i] = new InferTensor(input.Name, type, shape, data);
        }

        var outputs = new List<RequestedOutput>(request.Outputs.Count);
        for (var i = 0; i < request.Outputs.Count; i++)
        {
            var name = request.Outputs[i].Name;
            if (string.IsNullOrEmpty(name))
            {
                throw new InferenceRequestException($"outputs[{i}] has no name");
            }

            if (outputs.Exists(o => o.Name == name))
            {
                throw new InferenceRequestException($"output '{name}' is requested more than once");
            }

            int? classification = null;
            if (request.Outputs[i].Parameters.Count > 0)
            {
                foreach (var (parameter, value) in request.Outputs[i].Parameters)
                {
                    UnsupportedExtensions.Refuse($"outputs[{i}]", parameter);
                    if (parameter == "classification")
                    {
                        classification = value.ParameterChoiceCase == InferParameter.ParameterChoiceOneofCase.Int64Param && value.Int64Param is > 0 and <= int.MaxValue
                            ? (int)value.Int64Param
                            : throw new InferenceRequestException($"outputs[{i}]: parameters.classification must be a positive int64_param (the number of classes)");
                    }
                }
            }

            outputs.Add(new RequestedOutput(name, null, classification));
        }

        return new InferRequest(request.Id.Length == 0 ? null : request.Id, inputs, outputs, ReadParameters(request.Parameters));
    }

    /// <summary>Encodes a response (server side): every output's data goes in <c>raw_output_contents</c>, referenced, not copied.</summary>
    public static ModelInferResponse WriteResponse(InferResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        var message = new ModelInferResponse
        {
            ModelName = response.ModelName,
            ModelVersion = response.ModelVersion ?? string.Empty,
            Id = response.Id ?? string.Empty,
        };
        foreach (var output in response.Outputs)
        {
            var tensor = new ModelInferResponse.Types.InferOutputTensor { Name = output.Name, Datatype = output.DataType.ToProtocolName() };
            tensor.Shape.Add(output.Shape);
            message.Outputs.Add(tensor);
            message.RawOutputContents.Add(UnsafeByteOperations.UnsafeWrap(output.Data));
        }

        return message;
    }

    /// <summary>Builds a request (client side): raw contents, or typed contents where the datatype has a typed field.</summary>
    public static ModelInferRequest WriteRequest(string model, string? version, IReadOnlyList<InferTensor> inputs, bool raw = true,
        IReadOnlyList<string>? outputs = null, InferRequestParameters? parameters = null, string? id = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var request = new ModelInferRequest { ModelName = model, ModelVersion = version ?? string.Empty, Id = id ?? string.Empty };
        foreach (var input in inputs)
        {
            var tensor = new ModelInferRequest.Types.InferInputTensor { Name = input.Name, Datatype = input.DataType.ToProtocolName() };
            tensor.Shape.Add(input.Shape);
            if (raw)
            {
                request.RawInputContents.Add(UnsafeByteOperations.UnsafeWrap(input.Data));
            }
            else
            {
                tensor.Contents = WriteContents(input);
            }

            request.Inputs.Add(tensor);
        }

        foreach (var output in outputs ?? [])
        {
            request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = output });
        }

        if (parameters is not null)
        {
            if (parameters.Cache is { } cache)
            {
                request.Parameters["cache"] = new InferParameter { BoolParam = cache };
            }

            if (parameters.TimeoutMicroseconds is { } timeout)
            {
                request.Parameters["timeout"] = new InferParameter { Int64Param = timeout };
            }

            if (parameters.EntityId is { } entity)
            {
                request.Parameters["entity_id"] = new InferParameter { StringParam = entity };
            }
        }

        return request;
    }

    /// <summary>Reads a response (client side); raw outputs reference the message's buffers.</summary>
    /// <exception cref="InferenceRequestException">The response does not hold what its outputs declare.</exception>
    public static InferResponse ReadResponse(ModelInferResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        var outputs = new InferTensor[response.Outputs.Count];
        for (var i = 0; i < outputs.Length; i++)
        {
            var output = response.Outputs[i];
            var what = $"output '{output.Name}'";
            if (!DataTypes.TryParse(output.Datatype, out var type))
            {
                throw new InferenceRequestException($"{what}: unknown datatype '{output.Datatype}'");
            }

            var shape = output.Shape.ToArray();
            ReadOnlyMemory<byte> data;
            if (response.RawOutputContents.Count > i)
            {
                data = response.RawOutputContents[i].Memory;
                InferRequestValidator.CheckData(what, $"raw_output_contents[{i}]", type, shape, data.Span);
            }
            else
            {
                data = ReadContents(what, type, shape, InferRequestValidator.ElementCount(what, shape), output.Contents ?? new InferTensorContents());
            }

            outputs[i] = new InferTensor(output.Name, type, shape, data);
        }

        return new InferResponse(response.ModelName, response.ModelVersion.Length == 0 ? null : response.ModelVersion,
            response.Id.Length == 0 ? null : response.Id, outputs);
    }

    private static InferRequestParameters ReadParameters(MapField<string, InferParameter> parameters)
    {
        var result = InferRequestParameters.None;
        foreach (var (name, value) in parameters)
        {
            switch (name)
            {
                case "cache":
                    result = result with
                    {
                        Cache = value.ParameterChoiceCase == InferParameter.ParameterChoiceOneofCase.BoolParam
                            ? value.BoolParam
                            : throw new InferenceRequestException("parameters.cache must be a bool_param"),
                    };
                    break;
                case "timeout":
                    var micros = value.ParameterChoiceCase switch
                    {
                        InferParameter.ParameterChoiceOneofCase.Int64Param => value.Int64Param,
                        InferParameter.ParameterChoiceOneofCase.Uint64Param when value.Uint64Param <= long.MaxValue => (long)value.Uint64Param,
                        _ => 0,
                    };
                    result = result with
                    {
                        TimeoutMicroseconds = micros > 0 ? micros : throw new InferenceRequestException("parameters.timeout must be a positive int64_param (microseconds)"),
                    };
                    break;
                case "entity_id":
                    result = result with
                    {
                        EntityId = value.ParameterChoiceCase == InferParameter.ParameterChoiceOneofCase.StringParam && value.StringParam.Length > 0
                            ? value.StringParam
                            : throw new InferenceRequestException("parameters.entity_id must be a non-empty string_param (the entity whose features fill bound inputs)"),
                    };
                    break;
            }
        }

        return result;
    }

    private static bool HasAny(InferTensorContents contents) =>
        contents.BoolContents.Count > 0 || contents.IntContents.Count > 0 || contents.Int64Contents.Count > 0 || contents.UintContents.Count > 0
        || contents.Uint64Contents.Count > 0 || contents.Fp32Contents.Count > 0 || contents.Fp64Contents.Count > 0 || contents.BytesContents.Count > 0;

    /// <summary>The typed field a datatype's elements go in ("int_contents"), or null when it has none (raw only).</summary>
    private static string FieldOf(DataType type) => type switch
    {
        DataType.Bool => "bool_contents",
        DataType.Int8 or DataType.Int16 or DataType.Int32 => "int_contents",
        DataType.Int64 => "int64_contents",
        DataType.UInt8 or DataType.UInt16 or DataType.UInt32 => "uint_contents",
        DataType.UInt64 => "uint64_contents",
        DataType.Fp16 or DataType.Bf16 or DataType.Fp32 => "fp32_contents",
        DataType.Fp64 => "fp64_contents",
        _ => "bytes_contents",
    };

    private static byte[] ReadContents(string what, DataType type, long[] shape, long count, InferTensorContents contents)
    {
        var field = FieldOf(type);
        var present = Present(contents);
        foreach (var (name, elements) in present)
        {
            if (name != field && elements > 0)
            {
                throw new InferenceRequestException(
                    $"{what}: contents.{name} does not match datatype {type.ToProtocolName()} (its elements go in contents.{field})");
            }
        }

        var given = present.First(p => p.Name == field).Count;
        if (given != count)
        {
            throw new InferenceRequestException(
                $"{what}: shape {InferRequestValidator.FormatShape(shape)} needs {count} elements but contents.{field} has {given}");
        }

        if (type == DataType.Bytes)
        {
            var writer = new System.Buffers.ArrayBufferWriter<byte>();
            foreach (var element in contents.BytesContents)
            {
                BytesCodec.Write(writer, element.Span);
            }

            return writer.WrittenSpan.ToArray();
        }

        var size = type.ElementSize();
        var data = new byte[checked((int)(count * size))];
        for (var i = 0; i < (int)count; i++)
        {
            var destination = data.AsSpan(i * size, size);
            var ok = type switch
            {
                DataType.Bool => TensorElements.TryWriteUnsigned(type, contents.BoolContents[i] ? 1UL : 0UL, destination),
                DataType.Int8 or DataType.Int16 or DataType.Int32 => TensorElements.TryWriteInteger(type, contents.IntContents[i], destination),
                DataType.Int64 => TensorElements.TryWriteInteger(type, contents.Int64Contents[i], destination),
                DataType.UInt8 or DataType.UInt16 or DataType.UInt32 => TensorElements.TryWriteUnsigned(type, contents.UintContents[i], destination),
                DataType.UInt64 => TensorElements.TryWriteUnsigned(type, contents.Uint64Contents[i], destination),
                DataType.Fp64 => TensorElements.TryWriteDouble(type, contents.Fp64Contents[i], destination),
                _ => TensorElements.TryWriteSingle(type, contents.Fp32Contents[i], destination),
            };
            if (!ok)
            {
                throw new InferenceRequestException($"{what}: {TensorElements.OutOfRange(i, ValueText(type, contents, i), type)}");
            }
        }

        return data;
    }

    private static (string Name, int Count)[] Present(InferTensorContents contents) =>
    [
        ("bool_contents", contents.BoolContents.Count),
        ("int_contents", contents.IntContents.Count),
        ("int64_contents", contents.Int64Contents.Count),
        ("uint_contents", contents.UintContents.Count),
        ("uint64_contents", contents.Uint64Contents.Count),
        ("fp32_contents", contents.Fp32Contents.Count),
        ("fp64_contents", contents.Fp64Contents.Count),
        ("bytes_contents", contents.BytesContents.Count),
    ];

    private static string ValueText(DataType type, InferTensorContents contents, int index) => type switch
    {
        DataType.Int8 or DataType.Int16 or DataType.Int32 => contents.IntContents[index].ToString(CultureInfo.InvariantCulture),
        DataType.UInt8 or DataType.UInt16 or DataType.UInt32 => contents.UintContents[index].ToString(CultureInfo.InvariantCulture),
        DataType.Fp64 => contents.Fp64Contents[index].ToString("R", CultureInfo.InvariantCulture),
        _ => contents.Fp32Contents[index].ToString("R", CultureInfo.InvariantCulture),
    };

    private static InferTensorContents WriteContents(InferTensor input)
    {
        var contents = new InferTensorContents();
        var data = input.Data.Span;
        var size = input.DataType.ElementSize();
        if (input.DataType == DataType.Bytes)
        {
            foreach (var element in BytesCodec.Enumerate(data))
            {
                contents.BytesContents.Add(ByteString.CopyFrom(element));
            }

            return contents;
        }

        for (var offset = 0; offset < data.Length; offset += size)
        {
            var at = data[offset..];
            switch (input.DataType)
            {
                case DataType.Bool: contents.BoolContents.Add(at[0] != 0); break;
                case DataType.Int8: contents.IntContents.Add((sbyte)at[0]); break;
                case DataType.Int16: contents.IntContents.Add(BinaryPrimitives.ReadInt16LittleEndian(at)); break;
                case DataType.Int32: contents.IntContents.Add(BinaryPrimitives.ReadInt32LittleEndian(at)); break;
                case DataType.Int64: contents.Int64Contents.Add(BinaryPrimitives.ReadInt64LittleEndian(at)); break;
                case DataType.UInt8: contents.UintContents.Add(at[0]); break;
                case DataType.UInt16: contents.UintContents.Add(BinaryPrimitives.ReadUInt16LittleEndian(at)); break;
                case DataType.UInt32: contents.UintContents.Add(BinaryPrimitives.ReadUInt32LittleEndian(at)); break;
                case DataType.UInt64: contents.Uint64Contents.Add(BinaryPrimitives.ReadUInt64LittleEndian(at)); break;
                case DataType.Fp16: contents.Fp32Contents.Add((float)BinaryPrimitives.ReadHalfLittleEndian(at)); break;
                case DataType.Bf16: contents.Fp32Contents.Add(BFloat16Bits.Read(at)); break;
                case DataType.Fp32: contents.Fp32Contents.Add(BinaryPrimitives.ReadSingleLittleEndian(at)); break;
                case DataType.Fp64: contents.Fp64Contents.Add(BinaryPrimitives.ReadDoubleLittleEndian(at)); break;
            }
        }

        return contents;
    }
}
