using Microsoft.ML.OnnxRuntime;

namespace Platform.OnnxRuntime;

/// <summary>
/// Platform's handle on ONNX Runtime's process-wide environment (<see cref="OrtEnv"/>): created with global intra- and
/// inter-op thread pools that every session on the global pool shares, so several models and versions in one process
/// do not each start a pool per core. Register one as a DI singleton and create sessions from it.
/// </summary>
/// <remarks>
/// ONNX Runtime allows one environment per process and fixes its thread pools when it is created. The first
/// <see cref="OrtEnvironment"/> of a process creates it with its <see cref="OrtEnvironmentOptions"/>; later instances
/// share it and report the settings actually in force (<see cref="GlobalThreadPool"/>).
/// </remarks>
public sealed class OrtEnvironment : IDisposable
{
    /// <summary>Name of the CUDA provider in <see cref="AvailableProviders"/>.</summary>
    public const string CudaExecutionProvider = "CUDAExecutionProvider";

    // The environment and its thread pools are process-wide in ONNX Runtime itself; this records, once, with which
    // settings Platform created them, so every instance can tell whether sessions may use the global pools.
    private static readonly Lock ProcessGate = new();
    private static GlobalThreadPoolSettings? s_processThreadPool;

    private readonly Lock _weightsGate = new();
    private readonly Dictionary<string, SharedWeights> _sharedWeights = new(StringComparer.Ordinal);
    private volatile bool _disposed;

    /// <summary>Creates the process's ONNX Runtime environment with <paramref name="options"/>, or joins the existing one.</summary>
    /// <exception cref="OnnxRuntimeException">ONNX Runtime could not create the environment.</exception>
    public OrtEnvironment(OrtEnvironmentOptions? options = null)
    {
        options ??= new OrtEnvironmentOptions();
        ArgumentOutOfRangeException.ThrowIfNegative(options.IntraOpNumThreads);
        ArgumentOutOfRangeException.ThrowIfNegative(options.InterOpNumThreads);
        lock (ProcessGate)
        {
            if (!OrtEnv.IsCreated)
            {
                using var threading = new OrtThreadingOptions
                {
                    GlobalIntraOpNumThreads = options.IntraOpNumThreads,
                    GlobalInterOpNumThreads = options.InterOpNumThreads,
                    GlobalSpinControl = options.AllowSpinning,
                };
                var creation = new EnvironmentCreationOptions
                {
                    logId = options.LogId,
                    logLevel = options.LogLevel,
                    threadOptions = threading,
                };
                Env = OrtEnv.CreateInstanceWithOptions(ref creation);
                s_processThreadPool = new GlobalThreadPoolSettings(options.IntraOpNumThreads, options.InterOpNumThreads, options.AllowSpinning);
            }
            else
            {
                Env = OrtEnv.Instance();
            }
            // Null when something other than Platform created the environment (without global pools).
            GlobalThreadPool = s_processThreadPool;
        }
        Version = Env.GetVersionString();
        AvailableProviders = Env.GetAvailableProviders();
    }

    /// <summary>ONNX Runtime version, e.g. "1.32.0".</summary>
    public string Version { get; }

    /// <summary>
    /// Execution providers compiled into the loaded ONNX Runtime, e.g. <c>CUDAExecutionProvider</c>,
    /// <c>CPUExecutionProvider</c>. Being listed does not mean usable: CUDA also needs the CUDA libraries and a GPU.
    /// </summary>
    public IReadOnlyList<string> AvailableProviders { get; }

    /// <summary>Whether this ONNX Runtime build has the CUDA provider at all (the GPU package, not the CPU-only one).</summary>
    public bool HasCudaProvider => AvailableProviders.Contains(CudaExecutionProvider, StringComparer.Ordinal);

    /// <summary>The global thread pools in force in this process; null when the environment was created without them.</summary>
    public GlobalThreadPoolSettings? GlobalThreadPool { get; }

    internal OrtEnv Env { get; }

    /// <summary>Creates a session from an ONNX model file.</summary>
    /// <exception cref="OnnxRuntimeException">The file is missing or not a valid model (ONNX Runtime's code and message).</exception>
    /// <exception cref="ExecutionProviderUnavailableException">CUDA was required and cannot be used.</exception>
    public InferenceSession CreateSession(string modelPath, InferenceSessionOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return InferenceSession.Create(this, options ?? new InferenceSessionOptions(), new ModelSource(modelPath, null));
    }

    /// <summary>Creates a session from the bytes of an ONNX model.</summary>
    /// <exception cref="OnnxRuntimeException">The bytes are not a valid model (ONNX Runtime's code and message).</exception>
    /// <exception cref="ExecutionProviderUnavailableException">CUDA was required and cannot be used.</exception>
    public InferenceSession CreateSession(byte[] model, InferenceSessionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.Length == 0)
        {
            throw new ArgumentException("Model bytes are empty.", nameof(model));
        }
        ObjectDisposedException.ThrowIf(_disposed, this);
        return InferenceSession.Create(this, options ?? new InferenceSessionOptions(), new ModelSource(null, model));
    }

    /// <summary>
    /// Creates a session from a model file on the thread pool: loading and optimising a large graph can take long
    /// enough to stall a caller's thread. ONNX Runtime opens the file itself, so external-data files next to the model
    /// still resolve. Cancellation is honoured until loading starts.
    /// </summary>
    public Task<InferenceSession> CreateSessionAsync(string modelPath, InferenceSessionOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        return Task.Run(() =>
        {
            cancellationToken.ThrowIfCancellationRequested();
            return CreateSession(modelPath, options);
        }, cancellationToken);
    }

    /// <summary>Number of live sessions holding the shared weights of <paramref name="key"/>; 0 when none.</summary>
    public int SharedWeightsUsers(string key)
    {
        lock (_weightsGate)
        {
            return _sharedWeights.TryGetValue(key, out var shared) ? shared.Users : 0;
        }
    }

    /// <summary>Distinct initializers held for the sessions of <paramref name="key"/> (identical tensors are held once).</summary>
    public int SharedInitializerCount(string key)
    {
        lock (_weightsGate)
        {
            return _sharedWeights.TryGetValue(key, out var shared) ? shared.Initializers.Count : 0;
        }
    }

    /// <summary>The shared OrtValue of initializer <paramref name="name"/> under <paramref name="key"/>, if any session holds one.</summary>
    internal OrtValue? FindSharedInitializer(string key, string name)
    {
        lock (_weightsGate)
        {
            return _sharedWeights.TryGetValue(key, out var shared)
                ? shared.Initializers.Values.FirstOrDefault(e => e.Identity.StartsWith(name + ":", StringComparison.Ordinal))?.Value
                : null;
        }
    }

    /// <summary>
    /// Stops new sessions from being created through this instance. The process environment itself lives as long as
    /// the process (ONNX Runtime does not support re-creating it), and live sessions keep working.
    /// </summary>
    public void Dispose() => _disposed = true;

    /// <summary>
    /// The pre-packed weights container of <paramref name="key"/> and this model's initializers as shared OrtValues
    /// (identical tensors of earlier sessions reused). Each lease must be returned once, after its session is released.
    /// </summary>
    internal SharedWeightsLease LeaseSharedWeights(string key, IReadOnlyList<SharedInitializers.Tensor> tensors)
    {
        lock (_weightsGate)
        {
            if (!_sharedWeights.TryGetValue(key, out var shared))
            {
                _sharedWeights[key] = shared = new SharedWeights(new PrePackedWeightsContainer());
            }
            shared.Users++;
            var initializers = new List<(string Name, SharedInitializers.Entry Entry)>(tensors.Count);
            foreach (var tensor in tensors)
            {
                if (!shared.Initializers.TryGetValue(tensor.Identity, out var entry))
                {
                    shared.Initializers[tensor.Identity] = entry = SharedInitializers.Entry.Create(tensor);
                }
                entry.Users++;
                initializers.Add((tensor.Name, entry));
            }
            return new SharedWeightsLease(key, shared.Container, initializers);
        }
    }

    internal void ReturnSharedWeights(SharedWeightsLease lease)
    {
        lock (_weightsGate)
        {
            if (!_sharedWeights.TryGetValue(lease.Key, out var shared))
            {
                return;
            }
            foreach (var (_, entry) in lease.Initializers)
            {
                if (--entry.Users == 0)
                {
                    shared.Initializers.Remove(entry.Identity);
                    entry.Dispose();
                }
            }
            if (--shared.Users == 0)
            {
                // The last session of this key is gone; its pre-packed buffers go with the container.
                _sharedWeights.Remove(lease.Key);
                shared.Container.Dispose();
            }
        }
    }

    private sealed class SharedWeights(PrePackedWeightsContainer container)
    {
        public PrePackedWeightsContainer Container { get; } = container;

        public Dictionary<string, SharedInitializers.Entry> Initializers { get; } = new(StringComparer.Ordinal);

        public int Users { get; set; }
    }
}

/// <summary>One session's hold on the shared weights of its key.</summary>
internal sealed record SharedWeightsLease(string Key, PrePackedWeightsContainer Container,
    IReadOnlyList<(string Name, SharedInitializers.Entry Entry)> Initializers);

/// <summary>The process's global ONNX Runtime thread pools.</summary>
/// <param name="IntraOpNumThreads">Intra-op pool size; 0 means ONNX Runtime's default (one per physical core).</param>
/// <param name="InterOpNumThreads">Inter-op pool size; 0 means ONNX Runtime's default.</param>
/// <param name="AllowSpinning">Whether idle pool threads spin.</param>
public sealed record GlobalThreadPoolSettings(int IntraOpNumThreads, int InterOpNumThreads, bool AllowSpinning);

/// <summary>A model file path or the model's bytes.</summary>
internal readonly record struct ModelSource(string? Path, byte[]? Bytes);
