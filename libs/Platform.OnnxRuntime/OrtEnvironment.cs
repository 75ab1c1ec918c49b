using Platform.OnnxRuntime.Native;

namespace Platform.OnnxRuntime;

/// <summary>
/// The loaded ONNX Runtime library and its process-wide <c>OrtEnv</c>. Create one per process (register it as a
/// DI singleton) and create sessions from it; it must outlive nothing in particular, because sessions keep the
/// native environment alive until they are disposed.
/// </summary>
/// <remarks>
/// ONNX Runtime itself keeps a single environment per process and reference-counts <c>CreateEnv</c> calls, so
/// a second instance is harmless but shares the first one's logging settings.
/// </remarks>
public sealed class OrtEnvironment : IDisposable
{
    private readonly EnvHandle _env;
    private volatile bool _disposed;

    /// <summary>Loads the native library (see <see cref="OrtEnvironmentOptions.LibraryPath"/>) and creates the environment.</summary>
    /// <exception cref="OnnxRuntimeException">The library cannot be found or loaded, or is older than API version 30.</exception>
    public unsafe OrtEnvironment(OrtEnvironmentOptions? options = null)
    {
        options ??= new OrtEnvironmentOptions();
        var (_, apiBase, loadedFrom) = OrtLibraryLoader.Load(options.LibraryPath);
        LibraryPath = loadedFrom;
        Api = new OrtApi(apiBase, loadedFrom);
        Version = Api.Version;
        BuildInfo = NativeUtf8.Read(Api.GetBuildInfoString());
        AvailableProviders = ReadAvailableProviders(Api);

        _env = new EnvHandle(Api);
        using (var logId = new NativeUtf8(options.LogId))
        {
            IntPtr env;
            Api.Check(Api.CreateEnv((int)options.LogLevel, logId.Pointer, &env));
            _env.Attach(env);
        }

        IntPtr allocator;
        Api.Check(Api.GetAllocatorWithDefaultOptions(&allocator));
        // The default allocator is owned by ONNX Runtime for the life of the process and is never freed.
        DefaultAllocator = allocator;
    }

    /// <summary>ONNX Runtime version, e.g. "1.30.0".</summary>
    public string Version { get; }

    /// <summary>ONNX Runtime build description (<c>GetBuildInfoString</c>), useful in health output.</summary>
    public string BuildInfo { get; }

    /// <summary>Full path of the loaded <c>libonnxruntime.so.1</c> (or the bare name if the OS loader found it).</summary>
    public string LibraryPath { get; }

    /// <summary>
    /// Execution providers compiled into the library, e.g. <c>CUDAExecutionProvider</c>, <c>CPUExecutionProvider</c>.
    /// Being listed does not mean usable: CUDA also needs its provider library and a GPU.
    /// </summary>
    public IReadOnlyList<string> AvailableProviders { get; }

    internal OrtApi Api { get; }

    internal EnvHandle Handle => _env;

    internal IntPtr DefaultAllocator { get; }

    /// <summary>Creates a session from an ONNX model file.</summary>
    /// <exception cref="OnnxRuntimeException">The file is missing or not a valid model (ONNX Runtime's code and message).</exception>
    public InferenceSession CreateSession(string modelPath, InferenceSessionOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return InferenceSession.Create(this, options ?? new InferenceSessionOptions(), modelPath, ReadOnlySpan<byte>.Empty);
    }

    /// <summary>Creates a session from the bytes of an ONNX model; the bytes are not needed after this returns.</summary>
    /// <exception cref="OnnxRuntimeException">The bytes are not a valid model (ONNX Runtime's code and message).</exception>
    public InferenceSession CreateSession(ReadOnlySpan<byte> model, InferenceSessionOptions? options = null)
    {
        if (model.IsEmpty)
        {
            throw new ArgumentException("Model bytes are empty.", nameof(model));
        }
        ObjectDisposedException.ThrowIf(_disposed, this);
        return InferenceSession.Create(this, options ?? new InferenceSessionOptions(), null, model);
    }

    /// <summary>
    /// Creates a session from a model file on the thread pool: loading and optimising a large graph can take
    /// long enough to stall a caller's thread. The file is opened by ONNX Runtime itself so external-data
    /// files next to the model still resolve. Cancellation is honoured until loading starts.
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

    /// <summary>Releases this reference to the native environment; live sessions keep it alive until they are disposed.</summary>
    public void Dispose()
    {
        // The native env may stay alive after this (sessions hold references), so "disposed" is tracked here.
        _disposed = true;
        _env.Dispose();
    }

    private static unsafe IReadOnlyList<string> ReadAvailableProviders(OrtApi api)
    {
        byte** names;
        int count;
        api.Check(api.GetAvailableProviders(&names, &count));
        try
        {
            var result = new string[count];
            for (var i = 0; i < count; i++)
            {
                result[i] = NativeUtf8.Read(names[i]);
            }
            return result;
        }
        finally
        {
            api.Check(api.ReleaseAvailableProviders(names, count));
        }
    }
}
