namespace Platform.Inference.Protocol;

/// <summary>An input or output the model declares.</summary>
/// <param name="Name">Tensor name.</param>
/// <param name="DataType">Element type.</param>
/// <param name="Shape">Dimensions; -1 marks a dynamic dimension (typically the batch).</param>
public sealed record TensorSpec(string Name, DataType DataType, long[] Shape);

/// <summary>What a model version accepts and produces.</summary>
/// <param name="Inputs">Declared inputs.</param>
/// <param name="Outputs">Declared outputs.</param>
public sealed record ModelSignature(IReadOnlyList<TensorSpec> Inputs, IReadOnlyList<TensorSpec> Outputs);
