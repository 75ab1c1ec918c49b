namespace Platform.Inference.Protocol;

/// <summary>
/// The client sent something the protocol or the model does not accept. Always a 4xx: the message names the input
/// (or output) and what is wrong, and is returned to the client verbatim as <c>{"error": "..."}</c>.
/// </summary>
public sealed class InferenceRequestException : Exception
{
    /// <summary>Creates the exception with the client-facing message.</summary>
    public InferenceRequestException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with the client-facing message and the parser error behind it.</summary>
    public InferenceRequestException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
