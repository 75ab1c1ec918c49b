namespace Platform.OnnxRuntime;

/// <summary>ONNX Runtime logging severity (<c>OrtLoggingLevel</c>); messages below it are dropped.</summary>
public enum OrtLoggingLevel
{
    /// <summary>Everything, including verbose tracing.</summary>
    Verbose = 0,
    /// <summary>Informational messages and above.</summary>
    Info = 1,
    /// <summary>Warnings and above.</summary>
    Warning = 2,
    /// <summary>Errors and above.</summary>
    Error = 3,
    /// <summary>Only fatal errors.</summary>
    Fatal = 4,
}

/// <summary>Graph optimisation level applied when a session loads a model (<c>GraphOptimizationLevel</c>).</summary>
public enum GraphOptimizationLevel
{
    /// <summary>No graph rewrites.</summary>
    DisableAll = 0,
    /// <summary>Semantics-preserving rewrites such as constant folding and redundant node removal.</summary>
    Basic = 1,
    /// <summary>Basic plus operator fusions.</summary>
    Extended = 2,
    /// <summary>All optimisations including layout changes.</summary>
    All = 99,
}

/// <summary>Whether independent graph branches run sequentially or in parallel (<c>ExecutionMode</c>).</summary>
public enum ExecutionMode
{
    /// <summary>One node at a time; intra-op parallelism still applies.</summary>
    Sequential = 0,
    /// <summary>Independent nodes may run concurrently on the inter-op thread pool.</summary>
    Parallel = 1,
}

/// <summary>Which execution provider a session should try to use.</summary>
public enum ExecutionProviderPreference
{
    /// <summary>CPU only.</summary>
    Cpu = 0,
    /// <summary>CUDA if this machine can run it, otherwise CPU with <see cref="InferenceSession.ExecutionProviderFallbackReason"/> set.</summary>
    Cuda = 1,
    /// <summary>The best provider available: CUDA when usable, otherwise CPU.</summary>
    Auto = 2,
}

/// <summary>Options for loading the native library and creating the process-wide ONNX Runtime environment.</summary>
public sealed record OrtEnvironmentOptions
{
    /// <summary>
    /// Path of <c>libonnxruntime.so.1</c>. When null, <c>$PLATFORM_ORT_LIBRARY</c>, then the copy next to the
    /// application (<c>AppContext.BaseDirectory</c>), then the OS loader's search are tried.
    /// </summary>
    public string? LibraryPath { get; init; }

    /// <summary>Minimum severity of ONNX Runtime's own log messages (written to stderr by ONNX Runtime).</summary>
    public OrtLoggingLevel LogLevel { get; init; } = OrtLoggingLevel.Warning;

    /// <summary>Identifier that prefixes ONNX Runtime's log lines.</summary>
    public string LogId { get; init; } = "Platform";
}

/// <summary>Options for creating an <see cref="InferenceSession"/>.</summary>
public sealed record InferenceSessionOptions
{
    /// <summary>Graph optimisation level; defaults to <see cref="GraphOptimizationLevel.All"/>.</summary>
    public GraphOptimizationLevel GraphOptimizationLevel { get; init; } = GraphOptimizationLevel.All;

    /// <summary>Threads used inside one operator; 0 lets ONNX Runtime choose (one per physical core).</summary>
    public int IntraOpNumThreads { get; init; }

    /// <summary>Threads used to run independent operators in <see cref="ExecutionMode.Parallel"/>; 0 lets ONNX Runtime choose.</summary>
    public int InterOpNumThreads { get; init; }

    /// <summary>Sequential or parallel execution of independent graph branches.</summary>
    public ExecutionMode ExecutionMode { get; init; } = ExecutionMode.Sequential;

    /// <summary>Execution provider to try; CPU is always the fallback.</summary>
    public ExecutionProviderPreference ExecutionProvider { get; init; } = ExecutionProviderPreference.Cpu;

    /// <summary>CUDA device ordinal used when CUDA is selected.</summary>
    public int CudaDeviceId { get; init; }

    /// <summary>Reuse the memory plan between runs with equal input shapes.</summary>
    public bool EnableMemoryPattern { get; init; } = true;

    /// <summary>Use ONNX Runtime's arena allocator for CPU memory.</summary>
    public bool EnableCpuMemoryArena { get; init; } = true;

    /// <summary>Log identifier of this session in ONNX Runtime's log.</summary>
    public string? LogId { get; init; }

    /// <summary>Minimum severity for this session's log messages; null keeps the environment's level.</summary>
    public OrtLoggingLevel? LogSeverityLevel { get; init; }

    /// <summary>Raw session configuration entries (<c>AddSessionConfigEntry</c>), e.g. <c>session.intra_op.allow_spinning = 0</c>.</summary>
    public IReadOnlyDictionary<string, string>? ConfigEntries { get; init; }

    /// <summary>Fixes symbolic dimensions (by their dim_param name) to a value at load time, e.g. <c>batch = 1</c>.</summary>
    public IReadOnlyDictionary<string, long>? FreeDimensionOverrides { get; init; }

    /// <summary>
    /// Test hook: skip the check for a visible GPU and the provider library so the native CUDA append call runs
    /// (and reports ONNX Runtime's own error) even on a machine without CUDA.
    /// </summary>
    internal bool SkipCudaDeviceProbe { get; init; }
}
