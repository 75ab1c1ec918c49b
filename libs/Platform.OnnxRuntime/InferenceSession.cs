using System.Buffers;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Platform.OnnxRuntime.Native;

namespace Platform.OnnxRuntime;

/// <summary>
/// A loaded ONNX model (<c>OrtSession</c>). <see cref="Run(IReadOnlyList{NamedTensor}, IReadOnlyList{string}?, CancellationToken)"/>
/// may be called from several threads at once; ONNX Runtime sessions support concurrent runs.
/// </summary>
/// <remarks>
/// Intended use by a dynamic batcher: concatenate requests along dimension 0 into one buffer, wrap it with
/// <see cref="TensorData.FromBytes"/> (no copy), run, then split each output with
/// <see cref="OrtTensor.GetBatchItemBytes"/>.
/// </remarks>
public sealed unsafe class InferenceSession : IDisposable
{
    /// <summary>Name reported by <see cref="ExecutionProvider"/> when CUDA is in use.</summary>
    public const string CudaProvider = "CUDA";

    /// <summary>Name reported by <see cref="ExecutionProvider"/> when running on the CPU.</summary>
    public const string CpuProvider = "CPU";

    private const string CudaProviderLibrary = "libonnxruntime_providers_cuda.so";
    private const string SharedProviderLibrary = "libonnxruntime_providers_shared.so";
    private const string GpuDevice = "/dev/nvidia0";

    private readonly OrtApi _api;
    private readonly SessionHandle _session;
    private readonly MemoryInfoHandle _cpuMemoryInfo;
    private readonly IntPtr _allocator;
    private readonly TensorMetadata[] _inputs;
    private readonly TensorMetadata[] _outputs;
    private readonly IntPtr[] _inputNames;
    private readonly IntPtr[] _outputNames;
    private readonly Dictionary<string, int> _inputIndex;
    private readonly Dictionary<string, int> _outputIndex;
    private volatile bool _disposed;

    private InferenceSession(OrtEnvironment environment, SessionHandle session, string provider, string? fallbackReason)
    {
        _api = environment.Api;
        _session = session;
        _allocator = environment.DefaultAllocator;
        ExecutionProvider = provider;
        ExecutionProviderFallbackReason = fallbackReason;

        var pointer = session.DangerousGetHandle();
        _inputs = ReadMetadata(pointer, inputs: true);
        _outputs = ReadMetadata(pointer, inputs: false);
        _inputIndex = BuildIndex(_inputs);
        _outputIndex = BuildIndex(_outputs);
        _inputNames = AllocateNames(_inputs);
        _outputNames = AllocateNames(_outputs);

        _cpuMemoryInfo = new MemoryInfoHandle(_api);
        IntPtr memoryInfo;
        // Describes the pinned managed buffers that inputs and pre-allocated outputs are wrapped around.
        const int OrtArenaAllocator = 1, OrtMemTypeDefault = 0;
        _api.Check(_api.CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memoryInfo));
        _cpuMemoryInfo.Attach(memoryInfo);
    }

    /// <summary>Model inputs in model order.</summary>
    public IReadOnlyList<TensorMetadata> Inputs => _inputs;

    /// <summary>Model outputs in model order.</summary>
    public IReadOnlyList<TensorMetadata> Outputs => _outputs;

    /// <summary>The execution provider running this session: <see cref="CudaProvider"/> or <see cref="CpuProvider"/>.</summary>
    public string ExecutionProvider { get; }

    /// <summary>
    /// Why CUDA was not used although it was requested (<see cref="ExecutionProviderPreference.Cuda"/> or
    /// <see cref="ExecutionProviderPreference.Auto"/>); null when nothing fell back. Meant for logs and health output.
    /// </summary>
    public string? ExecutionProviderFallbackReason { get; }

    /// <summary>Metadata of the input with the given name.</summary>
    public TensorMetadata GetInput(string name) =>
        _inputIndex.TryGetValue(name, out var index) ? _inputs[index] : throw UnknownName("input", name, _inputs);

    /// <summary>Metadata of the output with the given name.</summary>
    public TensorMetadata GetOutput(string name) =>
        _outputIndex.TryGetValue(name, out var index) ? _outputs[index] : throw UnknownName("output", name, _outputs);

    /// <summary>
    /// Runs the model. Inputs are handed to ONNX Runtime over their own (pinned) memory without copies; every
    /// model input must be given once. Outputs are returned as owned tensors that the caller disposes.
    /// </summary>
    /// <param name="inputs">One tensor per model input.</param>
    /// <param name="outputNames">Outputs to compute, in the order they are returned; null for all outputs in model order.</param>
    /// <param name="cancellationToken">Cancels a run in progress (ONNX Runtime checks between operators).</param>
    /// <exception cref="ArgumentException">An input name, element type or shape does not match the model.</exception>
    /// <exception cref="OnnxRuntimeException">ONNX Runtime rejected the run (its code and message).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public InferenceResult Run(IReadOnlyList<NamedTensor> inputs, IReadOnlyList<string>? outputNames = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        cancellationToken.ThrowIfCancellationRequested();
        var inputOrder = ResolveInputs(inputs);
        var outputOrder = ResolveOutputNames(outputNames);

        var outputValues = new IntPtr[outputOrder.Length];
        try
        {
            RunCore(inputs, inputOrder, outputOrder, outputValues, cancellationToken);
        }
        catch
        {
            ReleaseValues(outputValues, new MemoryHandle[outputValues.Length]);
            throw;
        }

        // From here on every native value is owned by a handle, so an exception cannot leak them.
        var handles = new ValueHandle[outputValues.Length];
        for (var i = 0; i < handles.Length; i++)
        {
            handles[i] = new ValueHandle(_api);
            handles[i].Attach(outputValues[i]);
        }
        var tensors = new OrtTensor[handles.Length];
        try
        {
            for (var i = 0; i < tensors.Length; i++)
            {
                tensors[i] = new OrtTensor(_api, handles[i], _outputs[outputOrder[i]].Name);
            }
        }
        catch
        {
            foreach (var handle in handles)
            {
                handle.Dispose();
            }
            throw;
        }
        return new InferenceResult(tensors);
    }

    /// <summary>
    /// Runs the model writing results into caller-provided buffers (e.g. slices of a batcher's response buffer).
    /// Each output's <see cref="TensorData"/> must have the exact shape the model will produce; its memory is
    /// written in place. String outputs cannot be pre-allocated.
    /// </summary>
    /// <exception cref="ArgumentException">A name, element type or shape does not match the model.</exception>
    /// <exception cref="OnnxRuntimeException">ONNX Runtime rejected the run, e.g. the output shape differs from the computed one.</exception>
    public void Run(IReadOnlyList<NamedTensor> inputs, IReadOnlyList<NamedTensor> outputs, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(outputs);
        cancellationToken.ThrowIfCancellationRequested();
        var inputOrder = ResolveInputs(inputs);
        var outputOrder = new int[outputs.Count];
        for (var i = 0; i < outputs.Count; i++)
        {
            var output = outputs[i];
            if (!_outputIndex.TryGetValue(output.Name, out outputOrder[i]))
            {
                throw UnknownName("output", output.Name, _outputs);
            }
            if (output.Data.ElementType == TensorElementType.String)
            {
                throw new ArgumentException($"Output '{output.Name}' is a string tensor, which cannot be pre-allocated.", nameof(outputs));
            }
            if (Array.IndexOf(outputOrder, outputOrder[i], 0, i) >= 0)
            {
                throw new ArgumentException($"Output '{output.Name}' is given more than once.", nameof(outputs));
            }
            CheckAgainstMetadata(_outputs[outputOrder[i]], output.Data, "output");
        }

        var outputValues = new IntPtr[outputs.Count];
        var pins = new MemoryHandle[outputs.Count];
        using var memoryLease = new HandleLease(_cpuMemoryInfo);
        try
        {
            for (var i = 0; i < outputs.Count; i++)
            {
                outputValues[i] = CreateValue(outputs[i].Data, ref pins[i]);
            }
            RunCore(inputs, inputOrder, outputOrder, outputValues, cancellationToken);
        }
        finally
        {
            ReleaseValues(outputValues, pins);
        }
    }

    /// <summary>Releases the native session once no run is using it any more.</summary>
    public void Dispose()
    {
        _disposed = true;
        _session.Dispose();
        _cpuMemoryInfo.Dispose();
    }

    private void RunCore(IReadOnlyList<NamedTensor> inputs, int[] inputOrder, int[] outputOrder, IntPtr[] outputValues,
        CancellationToken cancellationToken)
    {
        // A run already in progress keeps the native session alive through its lease; new runs are refused.
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var sessionLease = new HandleLease(_session);
        using var memoryLease = new HandleLease(_cpuMemoryInfo);

        var inputValues = new IntPtr[inputs.Count];
        var pins = new MemoryHandle[inputs.Count];
        var inputNames = new IntPtr[inputs.Count];
        var outputNames = new IntPtr[outputOrder.Length];
        for (var i = 0; i < outputOrder.Length; i++)
        {
            outputNames[i] = _outputNames[outputOrder[i]];
        }

        RunOptionsHandle? runOptions = null;
        CancellationTokenRegistration registration = default;
        try
        {
            for (var i = 0; i < inputs.Count; i++)
            {
                inputNames[i] = _inputNames[inputOrder[i]];
                inputValues[i] = CreateValue(inputs[i].Data, ref pins[i]);
            }

            if (cancellationToken.CanBeCanceled)
            {
                runOptions = CreateRunOptions();
                var options = runOptions;
                // The terminate flag is polled by ONNX Runtime between kernels; the registration is disposed
                // before the options are released, so the callback never sees a freed pointer.
                registration = cancellationToken.Register(() =>
                {
                    // Runs on the cancelling thread; a failure to set the flag only means the run finishes normally.
                    var status = _api.RunOptionsSetTerminate(options.DangerousGetHandle());
                    if (status != IntPtr.Zero)
                    {
                        _api.ReleaseStatus(status);
                    }
                });
            }

            IntPtr status;
            fixed (IntPtr* inputNamesPointer = inputNames)
            fixed (IntPtr* inputValuesPointer = inputValues)
            fixed (IntPtr* outputNamesPointer = outputNames)
            fixed (IntPtr* outputValuesPointer = outputValues)
            {
                status = _api.Run(_session.DangerousGetHandle(),
                    runOptions?.DangerousGetHandle() ?? IntPtr.Zero,
                    inputNamesPointer, inputValuesPointer, (nuint)inputs.Count,
                    outputNamesPointer, (nuint)outputNames.Length, outputValuesPointer);
            }

            if (status != IntPtr.Zero)
            {
                var error = _api.ToException(status);
                if (cancellationToken.IsCancellationRequested)
                {
                    throw new OperationCanceledException("The inference run was cancelled.", error, cancellationToken);
                }
                throw error;
            }
        }
        finally
        {
            registration.Dispose();
            runOptions?.Dispose();
            ReleaseValues(inputValues, pins);
        }
    }

    private RunOptionsHandle CreateRunOptions()
    {
        var handle = new RunOptionsHandle(_api);
        IntPtr options;
        _api.Check(_api.CreateRunOptions(&options));
        handle.Attach(options);
        return handle;
    }

    /// <summary>Creates an OrtValue over the tensor's own memory (pinned into <paramref name="pin"/>), or a filled string tensor.</summary>
    private IntPtr CreateValue(TensorData data, ref MemoryHandle pin)
    {
        var shape = data.ShapeArray;
        IntPtr value;
        fixed (long* shapePointer = shape)
        {
            if (data.ElementType == TensorElementType.String)
            {
                _api.Check(_api.CreateTensorAsOrtValue(_allocator, shapePointer, (nuint)shape.Length, (int)TensorElementType.String, &value));
                try
                {
                    FillStrings(value, data.Strings!);
                }
                catch
                {
                    _api.ReleaseValue(value);
                    throw;
                }
                return value;
            }

            if (data.Bytes.IsEmpty)
            {
                // Zero elements: there is no memory to pin, so let ONNX Runtime allocate the empty tensor.
                _api.Check(_api.CreateTensorAsOrtValue(_allocator, shapePointer, (nuint)shape.Length, (int)data.ElementType, &value));
                return value;
            }

            pin = data.Bytes.Pin();
            _api.Check(_api.CreateTensorWithDataAsOrtValue(_cpuMemoryInfo.DangerousGetHandle(), pin.Pointer,
                (nuint)data.Bytes.Length, shapePointer, (nuint)shape.Length, (int)data.ElementType, &value));
            return value;
        }
    }

    private void FillStrings(IntPtr value, IReadOnlyList<string> strings)
    {
        if (strings.Count == 0)
        {
            return;
        }
        // One native block holds every string NUL-terminated, since FillStringTensor takes C strings.
        var total = 0;
        foreach (var text in strings)
        {
            total = checked(total + Encoding.UTF8.GetByteCount(text) + 1);
        }
        var block = (byte*)NativeMemory.Alloc((nuint)total);
        var pointers = (byte**)NativeMemory.Alloc((nuint)(strings.Count * sizeof(byte*)));
        try
        {
            var offset = 0;
            for (var i = 0; i < strings.Count; i++)
            {
                pointers[i] = block + offset;
                var written = Encoding.UTF8.GetBytes(strings[i], new Span<byte>(block + offset, total - offset));
                block[offset + written] = 0;
                offset += written + 1;
            }
            _api.Check(_api.FillStringTensor(value, pointers, (nuint)strings.Count));
        }
        finally
        {
            NativeMemory.Free(pointers);
            NativeMemory.Free(block);
        }
    }

    private void ReleaseValues(IntPtr[] values, MemoryHandle[] pins)
    {
        for (var i = 0; i < values.Length; i++)
        {
            if (values[i] != IntPtr.Zero)
            {
                _api.ReleaseValue(values[i]);
                values[i] = IntPtr.Zero;
            }
            pins[i].Dispose();
        }
    }

    private int[] ResolveInputs(IReadOnlyList<NamedTensor> inputs)
    {
        var order = new int[inputs.Count];
        var seen = new bool[_inputs.Length];
        for (var i = 0; i < inputs.Count; i++)
        {
            var input = inputs[i] ?? throw new ArgumentException($"Input {i} is null.", nameof(inputs));
            if (!_inputIndex.TryGetValue(input.Name, out var index))
            {
                throw UnknownName("input", input.Name, _inputs);
            }
            if (seen[index])
            {
                throw new ArgumentException($"Input '{input.Name}' is given more than once.", nameof(inputs));
            }
            seen[index] = true;
            order[i] = index;
            CheckAgainstMetadata(_inputs[index], input.Data, "input");
        }

        var missing = _inputs.Where((_, index) => !seen[index]).Select(m => $"'{m.Name}' {m.ElementType} {m.FormatShape()}").ToArray();
        if (missing.Length > 0)
        {
            throw new ArgumentException($"Missing model input(s): {string.Join(", ", missing)}.", nameof(inputs));
        }
        return order;
    }

    private int[] ResolveOutputNames(IReadOnlyList<string>? names)
    {
        if (names is null)
        {
            return Enumerable.Range(0, _outputs.Length).ToArray();
        }
        var order = new int[names.Count];
        for (var i = 0; i < names.Count; i++)
        {
            if (!_outputIndex.TryGetValue(names[i], out order[i]))
            {
                throw UnknownName("output", names[i], _outputs);
            }
            if (Array.IndexOf(order, order[i], 0, i) >= 0)
            {
                throw new ArgumentException($"Output '{names[i]}' is requested more than once.", nameof(names));
            }
        }
        return order;
    }

    private static void CheckAgainstMetadata(TensorMetadata expected, TensorData actual, string kind)
    {
        ArgumentNullException.ThrowIfNull(actual);
        if (expected.ValueType != OnnxValueType.Tensor)
        {
            throw new ArgumentException($"Model {kind} '{expected.Name}' is a {expected.ValueType}, not a tensor.");
        }
        if (expected.ElementType != actual.ElementType)
        {
            throw new ArgumentException(
                $"Model {kind} '{expected.Name}' expects element type {expected.ElementType}, but {actual.ElementType} was given.");
        }
        var shape = actual.Shape;
        var ok = shape.Count == expected.Rank;
        for (var d = 0; ok && d < shape.Count; d++)
        {
            ok = expected.Shape[d] < 0 || expected.Shape[d] == shape[d];
        }
        if (!ok)
        {
            throw new ArgumentException(
                $"Model {kind} '{expected.Name}' expects shape {expected.FormatShape()}, but [{string.Join(", ", shape)}] was given.");
        }
    }

    private static ArgumentException UnknownName(string kind, string name, TensorMetadata[] known) =>
        new($"The model has no {kind} named '{name}'. Its {kind}s are: {string.Join(", ", known.Select(m => $"'{m.Name}' {m.ElementType} {m.FormatShape()}"))}.");

    private TensorMetadata[] ReadMetadata(IntPtr session, bool inputs)
    {
        nuint count;
        _api.Check(inputs ? _api.SessionGetInputCount(session, &count) : _api.SessionGetOutputCount(session, &count));
        var result = new TensorMetadata[(int)count];
        for (nuint i = 0; i < count; i++)
        {
            byte* namePointer;
            _api.Check(inputs
                ? _api.SessionGetInputName(session, i, _allocator, &namePointer)
                : _api.SessionGetOutputName(session, i, _allocator, &namePointer));
            var name = NativeUtf8.Read(namePointer);
            _api.Check(_api.AllocatorFree(_allocator, namePointer));

            IntPtr typeInfo;
            _api.Check(inputs
                ? _api.SessionGetInputTypeInfo(session, i, &typeInfo)
                : _api.SessionGetOutputTypeInfo(session, i, &typeInfo));
            using var typeInfoHandle = new TypeInfoHandle(_api);
            typeInfoHandle.Attach(typeInfo);

            int onnxType;
            _api.Check(_api.GetOnnxTypeFromTypeInfo(typeInfo, &onnxType));
            IntPtr tensorInfo = IntPtr.Zero;
            if ((OnnxValueType)onnxType == OnnxValueType.Tensor)
            {
                // Borrowed from the type info; freed with it.
                _api.Check(_api.CastTypeInfoToTensorInfo(typeInfo, &tensorInfo));
            }

            if (tensorInfo == IntPtr.Zero)
            {
                result[i] = new TensorMetadata(name, (OnnxValueType)onnxType, TensorElementType.Undefined, [], []);
                continue;
            }

            var shape = ReadDimensions(_api, tensorInfo);
            var symbolic = new IntPtr[shape.Length];
            fixed (IntPtr* symbolicPointer = symbolic)
            {
                _api.Check(_api.GetSymbolicDimensions(tensorInfo, (byte**)symbolicPointer, (nuint)symbolic.Length));
            }
            var symbolicNames = symbolic.Select(s => NativeUtf8.Read((byte*)s)).ToArray();
            result[i] = new TensorMetadata(name, OnnxValueType.Tensor, ReadElementType(_api, tensorInfo), shape, symbolicNames);
        }
        return result;
    }

    internal static TensorElementType ReadElementType(OrtApi api, IntPtr tensorInfo)
    {
        int elementType;
        api.Check(api.GetTensorElementType(tensorInfo, &elementType));
        return (TensorElementType)elementType;
    }

    internal static long[] ReadDimensions(OrtApi api, IntPtr tensorInfo)
    {
        nuint rank;
        api.Check(api.GetDimensionsCount(tensorInfo, &rank));
        var dims = new long[(int)rank];
        fixed (long* dimsPointer = dims)
        {
            api.Check(api.GetDimensions(tensorInfo, dimsPointer, rank));
        }
        return dims;
    }

    private static Dictionary<string, int> BuildIndex(TensorMetadata[] items)
    {
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < items.Length; i++)
        {
            index[items[i].Name] = i;
        }
        return index;
    }

    private IntPtr[] AllocateNames(TensorMetadata[] items)
    {
        var names = new IntPtr[items.Length];
        for (var i = 0; i < items.Length; i++)
        {
            names[i] = Marshal.StringToCoTaskMemUTF8(items[i].Name);
            _session.OwnedNativeStrings.Add(names[i]);
        }
        return names;
    }

    internal static InferenceSession Create(OrtEnvironment environment, InferenceSessionOptions options, string? modelPath,
        ReadOnlySpan<byte> model)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(options.IntraOpNumThreads);
        ArgumentOutOfRangeException.ThrowIfNegative(options.InterOpNumThreads);
        var api = environment.Api;
        using var envLease = new HandleLease(environment.Handle);

        string? fallbackReason = null;
        var useCuda = false;
        if (options.ExecutionProvider != ExecutionProviderPreference.Cpu)
        {
            fallbackReason = options.SkipCudaDeviceProbe ? null : CudaUnavailableReason(environment);
            useCuda = fallbackReason is null;
        }

        if (useCuda)
        {
            try
            {
                using var cudaOptions = CreateSessionOptions(api, options, appendCuda: true);
                var cudaSession = CreateNative(environment, cudaOptions, modelPath, model);
                return Wrap(environment, cudaSession, CudaProvider, null);
            }
            catch (OnnxRuntimeException ex)
            {
                // A CUDA-enabled build can still fail here (driver/cuDNN mismatch, no device); CPU always works.
                fallbackReason = $"CUDA execution provider could not be used: {ex.OrtMessage}";
            }
        }

        using var cpuOptions = CreateSessionOptions(api, options, appendCuda: false);
        var cpuSession = CreateNative(environment, cpuOptions, modelPath, model);
        return Wrap(environment, cpuSession, CpuProvider, fallbackReason);
    }

    private static InferenceSession Wrap(OrtEnvironment environment, SessionHandle handle, string provider, string? fallbackReason)
    {
        try
        {
            return new InferenceSession(environment, handle, provider, fallbackReason);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static SessionHandle CreateNative(OrtEnvironment environment, SessionOptionsHandle options, string? modelPath,
        ReadOnlySpan<byte> model)
    {
        var api = environment.Api;
        var env = environment.Handle.DangerousGetHandle();
        IntPtr session;
        if (modelPath is not null)
        {
            using var path = new NativeUtf8(modelPath);
            api.Check(api.CreateSession(env, path.Pointer, options.DangerousGetHandle(), &session));
        }
        else
        {
            fixed (byte* modelPointer = model)
            {
                api.Check(api.CreateSessionFromArray(env, modelPointer, (nuint)model.Length, options.DangerousGetHandle(), &session));
            }
        }
        var handle = new SessionHandle(api);
        // The session keeps the environment alive: ONNX Runtime requires the env to outlive its sessions.
        handle.Attach(session, environment.Handle);
        return handle;
    }

    private static SessionOptionsHandle CreateSessionOptions(OrtApi api, InferenceSessionOptions options, bool appendCuda)
    {
        var handle = new SessionOptionsHandle(api);
        IntPtr pointer;
        api.Check(api.CreateSessionOptions(&pointer));
        handle.Attach(pointer);
        try
        {
            api.Check(api.SetSessionGraphOptimizationLevel(pointer, (int)options.GraphOptimizationLevel));
            api.Check(api.SetIntraOpNumThreads(pointer, options.IntraOpNumThreads));
            api.Check(api.SetInterOpNumThreads(pointer, options.InterOpNumThreads));
            api.Check(api.SetSessionExecutionMode(pointer, (int)options.ExecutionMode));
            api.Check(options.EnableMemoryPattern ? api.EnableMemPattern(pointer) : api.DisableMemPattern(pointer));
            api.Check(options.EnableCpuMemoryArena ? api.EnableCpuMemArena(pointer) : api.DisableCpuMemArena(pointer));
            if (options.LogId is not null)
            {
                using var logId = new NativeUtf8(options.LogId);
                api.Check(api.SetSessionLogId(pointer, logId.Pointer));
            }
            if (options.LogSeverityLevel is { } severity)
            {
                api.Check(api.SetSessionLogSeverityLevel(pointer, (int)severity));
            }
            foreach (var (key, value) in options.ConfigEntries ?? new Dictionary<string, string>())
            {
                using var k = new NativeUtf8(key);
                using var v = new NativeUtf8(value);
                api.Check(api.AddSessionConfigEntry(pointer, k.Pointer, v.Pointer));
            }
            foreach (var (name, value) in options.FreeDimensionOverrides ?? new Dictionary<string, long>())
            {
                using var n = new NativeUtf8(name);
                api.Check(api.AddFreeDimensionOverrideByName(pointer, n.Pointer, value));
            }
            if (appendCuda)
            {
                AppendCuda(api, pointer, options.CudaDeviceId);
            }
            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Appends the CUDA execution provider through the V2 options API (device id only; the rest stay at ONNX Runtime's defaults).</summary>
    internal static void AppendCuda(OrtApi api, IntPtr sessionOptions, int deviceId)
    {
        IntPtr cudaOptions;
        api.Check(api.CreateCUDAProviderOptions(&cudaOptions));
        using var handle = new CudaProviderOptionsHandle(api);
        handle.Attach(cudaOptions);
        using var key = new NativeUtf8("device_id");
        using var value = new NativeUtf8(deviceId.ToString(CultureInfo.InvariantCulture));
        var keyPointer = key.Pointer;
        var valuePointer = value.Pointer;
        api.Check(api.UpdateCUDAProviderOptions(cudaOptions, &keyPointer, &valuePointer, 1));
        api.Check(api.SessionOptionsAppendExecutionProvider_CUDA_V2(sessionOptions, cudaOptions));
    }

    /// <summary>Why CUDA cannot run here, or null when the build, provider library and a GPU are all present.</summary>
    internal static string? CudaUnavailableReason(OrtEnvironment environment)
    {
        if (!environment.AvailableProviders.Contains("CUDAExecutionProvider"))
        {
            return $"this ONNX Runtime build ({environment.Version}) has no CUDAExecutionProvider";
        }
        var directory = Path.GetDirectoryName(environment.LibraryPath);
        if (string.IsNullOrEmpty(directory))
        {
            return "the ONNX Runtime library's directory is unknown, so the CUDA provider library cannot be located";
        }
        foreach (var library in new[] { CudaProviderLibrary, SharedProviderLibrary })
        {
            var path = Path.Combine(directory, library);
            if (!File.Exists(path))
            {
                return $"the CUDA provider library {path} is not installed";
            }
        }
        if (!Path.Exists(GpuDevice))
        {
            return $"no GPU is visible ({GpuDevice} does not exist)";
        }
        return null;
    }
}
