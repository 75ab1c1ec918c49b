using Platform.OnnxRuntime;

namespace Platform.ModelWorker;

/// <summary>Worker settings (section <c>ModelWorker</c>).</summary>
public sealed class WorkerOptions
{
    /// <summary>Configuration section.</summary>
    public const string SectionName = "ModelWorker";

    /// <summary>
    /// Runs of generated input (zeros, dynamic dimensions as 1) each version gets after loading and before it reports
    /// Ready; InferenceApi gives a rollout's candidate traffic only once every replica reports it Ready. 0 skips warm-up.
    /// </summary>
    public int WarmUpRuns { get; set; } = 1;

    /// <summary>Local cache of model files, one per SHA-256; defaults to <c>$TMPDIR/platform-model-cache</c>.</summary>
    public string? CacheDirectory { get; set; }

    /// <summary>
    /// Size of ONNX Runtime's global intra-op thread pool, which every model and version on this worker shares (no
    /// session has threads of its own); 0 lets ONNX Runtime choose (one per physical core).
    /// </summary>
    public int IntraOpNumThreads { get; set; }

    /// <summary>
    /// Whether ONNX Runtime's pool threads spin while waiting for work. Spinning shaves microseconds off a run but burns a
    /// core per idle thread, which on a shared machine with several replicas costs more than it saves.
    /// </summary>
    public bool AllowSpinning { get; set; }

    /// <summary>
    /// <c>auto</c> (CUDA if it loads, else CPU with the reason in /health), <c>cuda</c> (start-up fails when CUDA cannot
    /// load, naming what is missing) or <c>cpu</c>.
    /// </summary>
    public ExecutionProviderPreference ExecutionProvider { get; set; } = ExecutionProviderPreference.Auto;

    /// <summary>CUDA settings (<c>ModelWorker:Cuda:DeviceId</c>, <c>GpuMemoryLimitBytes</c>, <c>ArenaExtendStrategy</c>, <c>CudnnConvAlgorithmSearch</c>, <c>EnableCudaGraph</c>).</summary>
    public CudaOptions Cuda { get; set; } = new();

    /// <summary>
    /// Whether batches also close as soon as a model version is idle (<see cref="Platform.Batching.BatchingOptions.DispatchWhenIdle"/>):
    /// a lone request runs at once and batches form from what arrives during a run. Off, every batch waits for the model's
    /// max batch size or max queue delay.
    /// </summary>
    public bool DispatchWhenIdle { get; set; } = true;

    /// <summary>Largest gRPC message the worker accepts (an Infer call with its tensors).</summary>
    public long MaxRequestBodyBytes { get; set; } = 256L * 1024 * 1024;
}
