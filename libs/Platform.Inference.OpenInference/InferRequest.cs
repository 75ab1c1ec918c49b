using Platform.Inference.Protocol;

namespace Platform.Inference.OpenInference;

/// <summary>A decoded <c>POST .../infer</c> request.</summary>
/// <param name="Id">Client-chosen id, echoed in the response; null when absent.</param>
/// <param name="Inputs">Input tensors in request order; binary inputs reference the request body (no copy).</param>
/// <param name="Outputs">Outputs the client asked for; empty means every output of the model.</param>
/// <param name="Parameters">Request-level parameters the server understands.</param>
public sealed record InferRequest(
    string? Id,
    IReadOnlyList<InferTensor> Inputs,
    IReadOnlyList<RequestedOutput> Outputs,
    InferRequestParameters Parameters);

/// <summary>An entry of the request's <c>outputs</c> array.</summary>
/// <param name="Name">Output name.</param>
/// <param name="BinaryData">The output's <c>parameters.binary_data</c>; null when not given (the request-wide setting applies).</param>
/// <param name="Classification">The output's <c>parameters.classification</c>: return its top N classes (<see cref="OutputClassification"/>); null for the tensor itself.</param>
public sealed record RequestedOutput(string Name, bool? BinaryData, int? Classification = null);

/// <summary>Request-level <c>parameters</c> the server acts on; others are accepted and ignored.</summary>
public sealed record InferRequestParameters
{
    /// <summary>Empty parameters.</summary>
    public static InferRequestParameters None { get; } = new();

    /// <summary><c>binary_data_output</c>: return every output as binary unless an output says otherwise.</summary>
    public bool BinaryDataOutput { get; init; }

    /// <summary><c>cache</c>: true/false forces the response cache on/off for this request; null follows the model setting.</summary>
    public bool? Cache { get; init; }

    /// <summary><c>timeout</c> in microseconds (Triton's name): the request fails with 504 rather than run later than this.</summary>
    public long? TimeoutMicroseconds { get; init; }

    /// <summary>
    /// <c>entity_id</c>: the entity (customer, item...) the request is about. Inputs the model version binds to feature
    /// sets and the request leaves out are filled from that entity's features; null when absent.
    /// </summary>
    public string? EntityId { get; init; }
}
