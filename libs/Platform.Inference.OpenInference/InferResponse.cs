using Platform.Inference.Protocol;

namespace Platform.Inference.OpenInference;

/// <summary>An inference response: what the server writes and what a client reads back.</summary>
/// <param name="ModelName">Model that answered.</param>
/// <param name="ModelVersion">Version that answered, as a string (the protocol's type).</param>
/// <param name="Id">The request's id; null when it had none.</param>
/// <param name="Outputs">Output tensors.</param>
public sealed record InferResponse(string ModelName, string? ModelVersion, string? Id, IReadOnlyList<InferTensor> Outputs)
{
    /// <summary>The output named <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">No such output.</exception>
    public InferTensor this[string name] =>
        Outputs.FirstOrDefault(o => o.Name == name) ?? throw new KeyNotFoundException($"the response has no output '{name}'");
}
