using Platform.Inference.Protocol;

namespace Platform.Inference.OpenInference;

/// <summary>An input or output the model declares.</summary>
/// <param name="Name">Tensor name.</param>
/// <param name="DataType">Element type.</param>
/// <param name="Shape">Dimensions; -1 marks a dynamic dimension (typically the batch).</param>
public sealed record TensorSpec(string Name, DataType DataType, long[] Shape);

/// <summary>What a model version accepts and produces.</summary>
/// <param name="Inputs">Declared inputs.</param>
/// <param name="Outputs">Declared outputs.</param>
public sealed record ModelSignature(IReadOnlyList<TensorSpec> Inputs, IReadOnlyList<TensorSpec> Outputs);

/// <summary>Checks a decoded request against a model's signature before anything is sent to a worker.</summary>
public static class InferRequestValidator
{
    /// <summary>Throws on the first mismatch, naming the input or output and what is wrong.</summary>
    /// <exception cref="InferenceRequestException">Unknown or missing input, wrong datatype or shape, unknown output.</exception>
    public static void Validate(InferRequest request, ModelSignature signature, string modelName)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(signature);
        foreach (var input in request.Inputs)
        {
            var spec = Find(signature.Inputs, input.Name)
                ?? throw new InferenceRequestException(
                    $"unknown input '{input.Name}'; model '{modelName}' expects {Describe(signature.Inputs)}");
            var what = $"input '{input.Name}'";
            if (input.DataType != spec.DataType)
            {
                throw new InferenceRequestException(
                    $"{what}: datatype {input.DataType.ToProtocolName()} does not match the model's {spec.DataType.ToProtocolName()}");
            }

            if (!ShapeMatches(input.Shape, spec.Shape))
            {
                throw new InferenceRequestException(
                    $"{what}: shape {TensorJsonDecoder.FormatShape(input.Shape)} does not match the model's {TensorJsonDecoder.FormatShape(spec.Shape)} (-1 = any size)");
            }
        }

        foreach (var spec in signature.Inputs)
        {
            if (!request.Inputs.Any(i => i.Name == spec.Name))
            {
                throw new InferenceRequestException(
                    $"missing input '{spec.Name}' ({spec.DataType.ToProtocolName()} {TensorJsonDecoder.FormatShape(spec.Shape)}); model '{modelName}' expects {Describe(signature.Inputs)}");
            }
        }

        foreach (var output in request.Outputs)
        {
            if (Find(signature.Outputs, output.Name) is null)
            {
                throw new InferenceRequestException(
                    $"unknown output '{output.Name}'; model '{modelName}' has outputs {string.Join(", ", signature.Outputs.Select(o => $"'{o.Name}'"))}");
            }
        }
    }

    /// <summary>True when every dimension equals the declared one or the declared one is dynamic (negative).</summary>
    public static bool ShapeMatches(IReadOnlyList<long> actual, IReadOnlyList<long> declared)
    {
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

    private static TensorSpec? Find(IReadOnlyList<TensorSpec> specs, string name)
    {
        foreach (var spec in specs)
        {
            if (spec.Name == name)
            {
                return spec;
            }
        }

        return null;
    }

    private static string Describe(IReadOnlyList<TensorSpec> inputs) =>
        string.Join(", ", inputs.Select(i => $"'{i.Name}' {i.DataType.ToProtocolName()} {TensorJsonDecoder.FormatShape(i.Shape)}"));
}
