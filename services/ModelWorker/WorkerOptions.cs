namespace Platform.ModelWorker;

/// <summary>Worker settings (section <c>ModelWorker</c>).</summary>
public sealed class WorkerOptions
{
    /// <summary>Configuration section.</summary>
    public const string SectionName = "ModelWorker";

    /// <summary>Local cache of model files, one per SHA-256; defaults to <c>$TMPDIR/platform-model-cache</c>.</summary>
    public string? CacheDirectory { get; set; }

    /// <summary>ONNX Runtime intra-op threads per session; 0 lets ONNX Runtime choose (one per core).</summary>
    public int IntraOpNumThreads { get; set; }

    /// <summary>
    /// Whether ONNX Runtime's pool threads spin while waiting for work. Spinning shaves microseconds off a run but burns a
    /// core per idle thread, which on a shared machine with several replicas costs more than it saves.
    /// </summary>
    public bool AllowSpinning { get; set; }

    /// <summary>
    /// Whether batches also close as soon as a model version is idle (<see cref="Platform.Batching.BatchingOptions.DispatchWhenIdle"/>):
    /// a lone request runs at once and batches form from what arrives during a run. Off, every batch waits for the model's
    /// max batch size or max queue delay.
    /// </summary>
    public bool DispatchWhenIdle { get; set; } = true;

    /// <summary>Try CUDA first (falls back to CPU with the reason in /health).</summary>
    public bool PreferCuda { get; set; } = true;

    /// <summary>Largest gRPC message the worker accepts (an Infer call with its tensors).</summary>
    public long MaxRequestBodyBytes { get; set; } = 256L * 1024 * 1024;
}
