using Microsoft.ML.OnnxRuntime;

namespace Platform.OnnxRuntime;

/// <summary>Which execution provider a session should use.</summary>
public enum ExecutionProviderPreference
{
    /// <summary>CPU only.</summary>
    Cpu = 0,
    /// <summary>CUDA or nothing: creating the session fails with <see cref="ExecutionProviderUnavailableException"/> when CUDA cannot load.</summary>
    Cuda = 1,
    /// <summary>CUDA when it loads, otherwise CPU with <see cref="InferenceSession.ExecutionProviderFallbackReason"/> set.</summary>
    Auto = 2,
}

/// <summary>How the CUDA memory arena grows (<c>arena_extend_strategy</c>).</summary>
public enum CudaArenaExtendStrategy
{
    /// <summary>Doubles the arena on each extension (ONNX Runtime's default; fewer, larger allocations).</summary>
    NextPowerOfTwo = 0,
    /// <summary>Grows by exactly what was requested (tighter memory, more allocations).</summary>
    SameAsRequested = 1,
}

/// <summary>How cuDNN picks convolution algorithms (<c>cudnn_conv_algo_search</c>).</summary>
public enum CudnnConvAlgorithmSearch
{
    /// <summary>Benchmarks every algorithm on first use of a shape (ONNX Runtime's default; slow first run, fastest kernels).</summary>
    Exhaustive = 0,
    /// <summary>cuDNN's heuristics, no benchmarking.</summary>
    Heuristic = 1,
    /// <summary>The default algorithm, no search.</summary>
    Default = 2,
}

/// <summary>CUDA execution provider settings, passed to ONNX Runtime as <c>OrtCUDAProviderOptions</c>.</summary>
public sealed record CudaOptions
{
    /// <summary>CUDA device ordinal.</summary>
    public int DeviceId { get; init; }

    /// <summary>Upper bound of the CUDA memory arena in bytes; null leaves ONNX Runtime's default (no limit).</summary>
    public long? GpuMemoryLimitBytes { get; init; }

    /// <summary>How the memory arena grows.</summary>
    public CudaArenaExtendStrategy ArenaExtendStrategy { get; init; } = CudaArenaExtendStrategy.NextPowerOfTwo;

    /// <summary>How cuDNN convolution algorithms are chosen.</summary>
    public CudnnConvAlgorithmSearch CudnnConvAlgorithmSearch { get; init; } = CudnnConvAlgorithmSearch.Exhaustive;

    /// <summary>
    /// Capture the graph once and replay it (<c>enable_cuda_graph</c>). Only for models with fixed shapes whose every
    /// node runs on CUDA; ONNX Runtime refuses to create the session otherwise. Off by default.
    /// </summary>
    public bool EnableCudaGraph { get; init; }

    /// <summary>The provider options as ONNX Runtime's key/value pairs.</summary>
    internal Dictionary<string, string> ToProviderOptions()
    {
        ArgumentOutOfRangeException.ThrowIfNegative(DeviceId);
        var options = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["device_id"] = DeviceId.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["arena_extend_strategy"] = ArenaExtendStrategy switch
            {
                CudaArenaExtendStrategy.NextPowerOfTwo => "kNextPowerOfTwo",
                CudaArenaExtendStrategy.SameAsRequested => "kSameAsRequested",
                _ => throw new ArgumentOutOfRangeException(nameof(ArenaExtendStrategy), ArenaExtendStrategy, "unknown arena extend strategy"),
            },
            ["cudnn_conv_algo_search"] = CudnnConvAlgorithmSearch switch
            {
                CudnnConvAlgorithmSearch.Exhaustive => "EXHAUSTIVE",
                CudnnConvAlgorithmSearch.Heuristic => "HEURISTIC",
                CudnnConvAlgorithmSearch.Default => "DEFAULT",
                _ => throw new ArgumentOutOfRangeException(nameof(CudnnConvAlgorithmSearch), CudnnConvAlgorithmSearch, "unknown search mode"),
            },
            ["enable_cuda_graph"] = EnableCudaGraph ? "1" : "0",
        };
        if (GpuMemoryLimitBytes is { } limit)
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit, nameof(GpuMemoryLimitBytes));
            options["gpu_mem_limit"] = limit.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        return options;
    }
}

/// <summary>Settings of the process-wide ONNX Runtime environment (<c>OrtEnv</c>), applied by whoever creates it first.</summary>
public sealed record OrtEnvironmentOptions
{
    /// <summary>Minimum severity of ONNX Runtime's own log messages (written to stderr by ONNX Runtime).</summary>
    public OrtLoggingLevel LogLevel { get; init; } = OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING;

    /// <summary>Identifier that prefixes ONNX Runtime's log lines.</summary>
    public string LogId { get; init; } = "Platform";

    /// <summary>
    /// Size of the global intra-op thread pool that every session on the global pool shares; 0 lets ONNX Runtime
    /// choose (one thread per physical core).
    /// </summary>
    public int IntraOpNumThreads { get; init; }

    /// <summary>Size of the global inter-op pool (used by sessions in parallel execution mode); 0 lets ONNX Runtime choose.</summary>
    public int InterOpNumThreads { get; init; }

    /// <summary>
    /// Whether the global pool's threads spin while waiting for work: a few microseconds less latency per run for a
    /// core burnt per idle thread, which costs more than it saves where processes share cores.
    /// </summary>
    public bool AllowSpinning { get; init; }
}

/// <summary>Options for creating an <see cref="InferenceSession"/>.</summary>
public sealed record InferenceSessionOptions
{
    /// <summary>Graph optimisation level; defaults to all optimisations.</summary>
    public GraphOptimizationLevel GraphOptimizationLevel { get; init; } = GraphOptimizationLevel.ORT_ENABLE_ALL;

    /// <summary>
    /// Threads used inside one operator. 0 (the default) runs the session on the environment's global thread pool,
    /// shared by every such session; a positive number gives this session a private pool of that size instead.
    /// </summary>
    public int IntraOpNumThreads { get; init; }

    /// <summary>Private inter-op pool size for <see cref="Microsoft.ML.OnnxRuntime.ExecutionMode.ORT_PARALLEL"/>; like <see cref="IntraOpNumThreads"/>, positive means a private pool.</summary>
    public int InterOpNumThreads { get; init; }

    /// <summary>Sequential or parallel execution of independent graph branches.</summary>
    public ExecutionMode ExecutionMode { get; init; } = ExecutionMode.ORT_SEQUENTIAL;

    /// <summary>Execution provider to use.</summary>
    public ExecutionProviderPreference ExecutionProvider { get; init; } = ExecutionProviderPreference.Cpu;

    /// <summary>CUDA settings, used when CUDA is tried.</summary>
    public CudaOptions Cuda { get; init; } = new();

    /// <summary>Reuse the memory plan between runs with equal input shapes.</summary>
    public bool EnableMemoryPattern { get; init; } = true;

    /// <summary>Use ONNX Runtime's arena allocator for CPU memory.</summary>
    public bool EnableCpuMemoryArena { get; init; } = true;

    /// <summary>
    /// Let <see cref="InferenceSession.Run(IReadOnlyList{NamedTensor}, IReadOnlyList{string}?, CancellationToken)"/> write
    /// outputs whose shape the model declares in terms of the inputs' batch dimension straight into managed buffers,
    /// which callers then slice without copying (<see cref="OrtTensor.TryGetBatchItemMemory"/>).
    /// </summary>
    public bool PreallocateOutputs { get; init; } = true;

    /// <summary>
    /// Sessions created with the same key (e.g. the model's name, so every loaded version of it) share their weights:
    /// each identical initializer is held once, as an ONNX Runtime shared initializer, and the layouts that kernels
    /// pre-pack from them (MatMul/Gemm on the CPU) are cached once in the key's <c>PrePackedWeightsContainer</c>.
    /// Tensors that differ between the sessions are each their own. Null shares nothing.
    /// </summary>
    public string? SharedWeightsKey { get; init; }

    /// <summary>Log identifier of this session in ONNX Runtime's log.</summary>
    public string? LogId { get; init; }

    /// <summary>Minimum severity for this session's log messages; null keeps the environment's level.</summary>
    public OrtLoggingLevel? LogSeverityLevel { get; init; }

    /// <summary>Raw session configuration entries (<c>AddSessionConfigEntry</c>), e.g. <c>session.intra_op.allow_spinning = 0</c>.</summary>
    public IReadOnlyDictionary<string, string>? ConfigEntries { get; init; }

    /// <summary>Fixes symbolic dimensions (by their dim_param name) to a value at load time, e.g. <c>batch = 1</c>.</summary>
    public IReadOnlyDictionary<string, long>? FreeDimensionOverrides { get; init; }

    /// <summary>Write a profile (JSON trace of every node with its execution provider) whose path prefix this is; null for none.</summary>
    public string? ProfileOutputPathPrefix { get; init; }
}
