using System.Globalization;

namespace Platform.Inference.Protocol;

/// <summary>
/// The one validator of inference requests against a model's signature, used at the edge (REST JSON, REST binary,
/// gRPC) and again by the worker for what arrives over the hop. Every message names the tensor and what is wrong, and
/// is meant for the client verbatim.
/// </summary>
public static class InferRequestValidator
{
    /// <summary>Throws on the first mismatch: unknown, repeated or missing input; datatype, shape or data mismatch; unknown or repeated output.</summary>
    /// <param name="inputs">The request's inputs.</param>
    /// <param name="outputs">Names of the outputs asked for (empty: all).</param>
    /// <param name="signature">The model version's signature.</param>
    /// <param name="modelName">For messages.</param>
    /// <param name="dataLabel">How messages call a tensor's raw data ("binary_data_size", "data"...); null skips the data checks (already done by the decoder).</param>
    /// <exception cref="InferenceRequestException">The request does not fit the model.</exception>
    public static void Validate(IReadOnlyList<InferTensor> inputs, IEnumerable<string> outputs, ModelSignature signature, string modelName, string? dataLabel = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(signature);
        for (var i = 0; i < inputs.Count; i++)
        {
            var input = inputs[i];
            for (var j = 0; j < i; j++)
            {
                if (inputs[j].Name == input.Name)
                {
                    throw new InferenceRequestException($"input '{input.Name}' appears more than once");
                }
            }

            var spec = Find(signature.Inputs, input.Name)
                ?? throw new InferenceRequestException(
                    $"unknown input '{input.Name}'; model '{modelName}' expects {Describe(signature.Inputs)}");
            // Messages are built only for a request that fails: validation runs on every inference.
            if (input.DataType != spec.DataType)
            {
                throw new InferenceRequestException(
                    $"input '{input.Name}': datatype {input.DataType.ToProtocolName()} does not match the model's {spec.DataType.ToProtocolName()}");
            }

            if (!ShapeMatches(input.Shape, spec.Shape))
            {
                throw new InferenceRequestException(
                    $"input '{input.Name}': shape {FormatShape(input.Shape)} does not match the model's {FormatShape(spec.Shape)} (-1 = any size)");
            }

            if (dataLabel is not null)
            {
                CheckData($"input '{input.Name}'", dataLabel, input.DataType, input.Shape, input.Data.Span);
            }
        }

        for (var i = 0; i < signature.Inputs.Count; i++)
        {
            var spec = signature.Inputs[i];
            if (Find(inputs, spec.Name) is null)
            {
                throw new InferenceRequestException(
                    $"missing input '{spec.Name}' ({spec.DataType.ToProtocolName()} {FormatShape(spec.Shape)}); model '{modelName}' expects {Describe(signature.Inputs)}");
            }
        }

        HashSet<string>? seen = null;
        foreach (var output in outputs)
        {
            if (Find(signature.Outputs, output) is null)
            {
                throw new InferenceRequestException(
                    $"unknown output '{output}'; model '{modelName}' has outputs {string.Join(", ", signature.Outputs.Select(o => $"'{o.Name}'"))}");
            }

            if (!(seen ??= new HashSet<string>(StringComparer.Ordinal)).Add(output))
            {
                throw new InferenceRequestException($"output '{output}' is requested more than once");
            }
        }
    }

    /// <summary>
    /// Checks raw tensor bytes against the shape and the type's range: the exact size for fixed-size types, a
    /// well-formed element list for BYTES, and 0 or 1 for every BOOL byte. (Raw integers cannot leave their type's
    /// range; raw floats may be NaN or infinite, which the protocol allows.)
    /// </summary>
    /// <param name="what">How messages name the tensor, e.g. "input 'x'".</param>
    /// <param name="dataLabel">How messages name the data, e.g. "binary_data_size" or "raw_input_contents[0]".</param>
    /// <param name="type">Element type.</param>
    /// <param name="shape">Shape.</param>
    /// <param name="data">Element bytes.</param>
    /// <exception cref="InferenceRequestException">The data does not fit.</exception>
    public static void CheckData(string what, string dataLabel, DataType type, IReadOnlyList<long> shape, ReadOnlySpan<byte> data)
    {
        var count = ElementCount(what, shape);
        if (type == DataType.Bytes)
        {
            var elements = BytesCodec.Count(what, data);
            if (elements != count)
            {
                throw new InferenceRequestException(
                    $"{what}: shape {FormatShape(shape)} needs {count} elements but the binary data holds {elements}");
            }

            return;
        }

        var expected = count * type.ElementSize();
        if (data.Length != expected)
        {
            throw new InferenceRequestException(
                $"{what}: {dataLabel} is {data.Length} bytes but shape {FormatShape(shape)} of {type.ToProtocolName()} needs {expected}");
        }

        if (type == DataType.Bool)
        {
            var bad = data.IndexOfAnyExcept((byte)0, (byte)1);
            if (bad >= 0)
            {
                throw new InferenceRequestException($"{what}: element {bad} is {data[bad]}, out of the range of BOOL (0 or 1)");
            }
        }
    }

    /// <summary>Elements the shape describes.</summary>
    /// <exception cref="InferenceRequestException">A negative dimension, or more elements than one tensor may hold (2^31 - 1).</exception>
    public static long ElementCount(string what, IReadOnlyList<long> shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long count = 1;
        for (var i = 0; i < shape.Count; i++)
        {
            var dimension = shape[i];
            if (dimension < 0)
            {
                throw new InferenceRequestException($"{what}: shape {FormatShape(shape)} has a negative dimension");
            }

            try
            {
                count = checked(count * dimension);
            }
            catch (OverflowException)
            {
                throw new InferenceRequestException($"{what}: shape {FormatShape(shape)} is too large");
            }
        }

        if (count > int.MaxValue)
        {
            throw new InferenceRequestException($"{what}: shape {FormatShape(shape)} is too large");
        }

        return count;
    }

    /// <summary>True when every dimension equals the declared one or the declared one is dynamic (negative).</summary>
    public static bool ShapeMatches(IReadOnlyList<long> actual, IReadOnlyList<long> declared)
    {
        ArgumentNullException.ThrowIfNull(actual);
        ArgumentNullException.ThrowIfNull(declared);
        if (actual.Count != declared.Count)
        {
            return false;
        }

        for (var i = 0; i < actual.Count; i++)
        {
            if (declared[i] >= 0 && declared[i] != actual[i])
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>"[2,3]".</summary>
    public static string FormatShape(IReadOnlyList<long> shape) =>
        "[" + string.Join(",", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "]";

    private static TensorSpec? Find(IReadOnlyList<TensorSpec> specs, string name)
    {
        // Indexed: a foreach over the interface would allocate an enumerator per call.
        for (var i = 0; i < specs.Count; i++)
        {
            if (specs[i].Name == name)
            {
                return specs[i];
            }
        }

        return null;
    }

    private static InferTensor? Find(IReadOnlyList<InferTensor> tensors, string name)
    {
        for (var i = 0; i < tensors.Count; i++)
        {
            if (tensors[i].Name == name)
            {
                return tensors[i];
            }
        }

        return null;
    }

    private static string Describe(IReadOnlyList<TensorSpec> inputs) =>
        string.Join(", ", inputs.Select(i => $"'{i.Name}' {i.DataType.ToProtocolName()} {FormatShape(i.Shape)}"));
}
