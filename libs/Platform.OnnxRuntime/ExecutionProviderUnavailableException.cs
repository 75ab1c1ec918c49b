namespace Platform.OnnxRuntime;

/// <summary>
/// CUDA was required (<see cref="ExecutionProviderPreference.Cuda"/>) but could not be used. <see cref="Exception.Message"/>
/// says why in ONNX Runtime's words, e.g. which shared library failed to load.
/// </summary>
public sealed class ExecutionProviderUnavailableException : InvalidOperationException
{
    /// <summary>Creates the exception for <paramref name="provider"/> with the reason it is unavailable.</summary>
    public ExecutionProviderUnavailableException(string provider, string reason, Exception? innerException = null)
        : base($"The {provider} execution provider could not be used: {reason}", innerException)
    {
        Provider = provider;
        Reason = reason;
    }

    /// <summary>The provider that was required, e.g. <see cref="InferenceSession.CudaProvider"/>.</summary>
    public string Provider { get; }

    /// <summary>Why it could not be used.</summary>
    public string Reason { get; }
}
