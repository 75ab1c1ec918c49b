using Platform.Inference.Protocol;

namespace Platform.Inference.OpenInference;

/// <summary>
/// Tensor parameters of Triton extensions Platform does not offer (shared memory). Skipping them as
/// unknown would answer something other than what the client asked for, so a request carrying one is refused, over
/// REST and gRPC alike.
/// </summary>
internal static class UnsupportedExtensions
{
    /// <summary>Throws <see cref="InferenceRequestException"/> when <paramref name="parameter"/> belongs to an extension Platform does not offer.</summary>
    /// <param name="what">The tensor as messages name it, e.g. <c>input 'x'</c> or <c>outputs[0]</c>.</param>
    /// <param name="parameter">The parameter's name.</param>
    public static void Refuse(string what, string parameter)
    {
        if (parameter.StartsWith("shared_memory_", StringComparison.Ordinal))
        {
            throw new InferenceRequestException(
                $"{what}: parameters.{parameter} is not supported (Triton's shared-memory extensions); send the tensor's data in the request");
        }
    }
}
