namespace Platform.Inference.Protocol;

/// <summary>Conventions of the worker hop (<c>platform.worker.v1.ModelWorker</c>) beyond its messages.</summary>
public static class WorkerProtocol
{
    /// <summary>Trailer in which a worker states a retry delay in milliseconds with UNAVAILABLE or RESOURCE_EXHAUSTED.</summary>
    public const string RetryAfterTrailer = "retry-after-ms";
}
