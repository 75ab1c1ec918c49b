using System.Buffers;
using Microsoft.ML.OnnxRuntime;
using Ort = Microsoft.ML.OnnxRuntime;

namespace Platform.OnnxRuntime;

/// <summary>
/// A loaded ONNX model on one execution provider, over ONNX Runtime's official C# API. <see cref="Run(IReadOnlyList{NamedTensor}, IReadOnlyList{string}?, CancellationToken)"/>
/// may be called from several threads at once; ONNX Runtime sessions support concurrent runs.
/// </summary>
/// <remarks>
/// Intended use by a dynamic batcher: concatenate requests along dimension 0 into one buffer and wrap it with
/// <see cref="TensorData.FromBytes"/>; the run hands that memory to ONNX Runtime pinned, without a copy. Outputs whose
/// shape the model declares in terms of the batch dimension are written into managed buffers allocated before the run,
/// which <see cref="OrtTensor.TryGetBatchItemMemory"/> slices per request without copying.
/// </remarks>
public sealed class InferenceSession : IDisposable
{
    /// <summary>Name reported by <see cref="ExecutionProvider"/> when CUDA runs the session.</summary>
    public const string CudaProvider = "CUDA";

    /// <summary>Name reported by <see cref="ExecutionProvider"/> when the CPU runs the session.</summary>
    public const string CpuProvider = "CPU";

    private readonly Ort.InferenceSession _session;
    private readonly OrtEnvironment _environment;
    private readonly SharedWeightsLease? _sharedWeights;
    private readonly TensorMetadata[] _inputs;
    private readonly TensorMetadata[] _outputs;
    private readonly Dictionary<string, int> _inputIndex;
    private readonly Dictionary<string, int> _outputIndex;
    private readonly OutputShapeRule?[] _outputShapes;
    private readonly bool _preallocateOutputs;
    // Runs that cannot be cancelled share these; their terminate flag is never set.
    private readonly RunOptions _defaultRunOptions = new();
    private int _activeRuns;
    private int _disposeRequested;
    private int _released;

    private InferenceSession(OrtEnvironment environment, Ort.InferenceSession session, InferenceSessionOptions options,
        SharedWeightsLease? sharedWeights, bool globalThreadPool, string provider, string? fallbackReason)
    {
        _environment = environment;
        _session = session;
        _sharedWeights = sharedWeights;
        _preallocateOutputs = options.PreallocateOutputs;
        ExecutionProvider = provider;
        ExecutionProviderFallbackReason = fallbackReason;
        UsesGlobalThreadPool = globalThreadPool;
        _inputs = ReadMetadata(session.InputNames, session.InputMetadata);
        _outputs = ReadMetadata(session.OutputNames, session.OutputMetadata);
        _inputIndex = BuildIndex(_inputs);
        _outputIndex = BuildIndex(_outputs);
        _outputShapes = _outputs.Select(o => OutputShapeRule.For(o, _inputs)).ToArray();
    }

    /// <summary>Model inputs in model order.</summary>
    public IReadOnlyList<TensorMetadata> Inputs => _inputs;

    /// <summary>Model outputs in model order.</summary>
    public IReadOnlyList<TensorMetadata> Outputs => _outputs;

    /// <summary>The execution provider running this session: <see cref="CudaProvider"/> or <see cref="CpuProvider"/>.</summary>
    public string ExecutionProvider { get; }

    /// <summary>
    /// Why CUDA is not used although <see cref="ExecutionProviderPreference.Auto"/> asked for it, in ONNX Runtime's words
    /// (e.g. the shared library that failed to load); null when nothing fell back. Meant for logs and health output.
    /// </summary>
    public string? ExecutionProviderFallbackReason { get; }

    /// <summary>Whether the session runs on the environment's global thread pools (no threads of its own).</summary>
    public bool UsesGlobalThreadPool { get; }

    /// <summary>Metadata of the input with the given name.</summary>
    public TensorMetadata GetInput(string name) =>
        _inputIndex.TryGetValue(name, out var index) ? _inputs[index] : throw UnknownName("input", name, _inputs);

    /// <summary>Metadata of the output with the given name.</summary>
    public TensorMetadata GetOutput(string name) =>
        _outputIndex.TryGetValue(name, out var index) ? _outputs[index] : throw UnknownName("output", name, _outputs);

    /// <summary>Whether <see cref="Run(IReadOnlyList{NamedTensor}, IReadOnlyList{string}?, CancellationToken)"/> writes this output into a managed buffer.</summary>
    public bool PreallocatesOutput(string name) =>
        _preallocateOutputs && _outputShapes[_outputIndex.TryGetValue(name, out var index) ? index : throw UnknownName("output", name, _outputs)] is not null;

    /// <summary>
    /// Where ONNX Runtime places each input (in model order), e.g. <c>Cpu</c> or <c>Cuda</c>: the device of the first node
    /// that consumes it, so a model whose nodes run on CUDA reports <c>Cuda</c>.
    /// </summary>
    public IReadOnlyList<string> InputDevices()
    {
        using var lease = EnterRun();
        using var infos = _session.GetMemoryInfosForInputs();
        return infos.Select(i => i.Name).ToArray();
    }

    /// <summary>Ends profiling (<see cref="InferenceSessionOptions.ProfileOutputPathPrefix"/>) and returns the profile file's path.</summary>
    public string EndProfiling()
    {
        using var lease = EnterRun();
        return _session.EndProfiling();
    }

    /// <summary>
    /// Runs the model. Inputs are handed to ONNX Runtime over their own pinned memory without copies; every model
    /// input must be given once. Outputs are returned as tensors that the caller disposes: managed buffers where the
    /// model declares the output's shape in terms of the inputs (see <see cref="PreallocatesOutput"/>), ONNX Runtime's
    /// memory otherwise.
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
        var names = outputOrder.Select(i => _outputs[i].Name).ToArray();

        using var lease = EnterRun();
        using var values = new RunValues();
        AddInputs(values, inputs, inputOrder);

        var shapes = _preallocateOutputs ? PlanOutputShapes(inputs, inputOrder, outputOrder) : null;
        if (shapes is not null)
        {
            var buffers = new byte[shapes.Length][];
            var outputValues = new OrtValue[shapes.Length];
            for (var i = 0; i < shapes.Length; i++)
            {
                var type = _outputs[outputOrder[i]].ElementType;
                // A fresh buffer per run: slices of it leave with the results (no pool could know when they are done).
                buffers[i] = GC.AllocateUninitializedArray<byte>(checked((int)(TensorData.CountElements(shapes[i]) * type.SizeInBytes())));
                outputValues[i] = values.Wrap(type, shapes[i], buffers[i]);
            }
            Execute(values, names, outputValues, cancellationToken);
            var tensors = new OrtTensor[shapes.Length];
            for (var i = 0; i < tensors.Length; i++)
            {
                tensors[i] = new OrtTensor(names[i], _outputs[outputOrder[i]].ElementType, shapes[i], buffers[i]);
            }
            return new InferenceResult(tensors);
        }

        var results = Execute(values, names, cancellationToken);
        return Adopt(results, names);
    }

    /// <summary>
    /// Runs the model writing results into caller-provided buffers (e.g. slices of a response buffer). Each output's
    /// <see cref="TensorData"/> must have the exact shape the model will produce; its memory is written in place.
    /// String outputs cannot be pre-allocated.
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

        using var lease = EnterRun();
        using var values = new RunValues();
        AddInputs(values, inputs, inputOrder);
        var outputValues = outputs.Select(o => values.Wrap(o.Data)).ToArray();
        Execute(values, outputs.Select(o => o.Name).ToArray(), outputValues, cancellationToken);
    }

    /// <summary>Releases the native session once no run is using it any more; new runs are refused.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposeRequested, 1) == 0 && Volatile.Read(ref _activeRuns) == 0)
        {
            Release();
        }
    }

    private RunLease EnterRun()
    {
        Interlocked.Increment(ref _activeRuns);
        if (Volatile.Read(ref _disposeRequested) != 0)
        {
            ExitRun();
            throw new ObjectDisposedException(nameof(InferenceSession));
        }
        return new RunLease(this);
    }

    private void ExitRun()
    {
        // The last run to leave a disposed session releases it.
        if (Interlocked.Decrement(ref _activeRuns) == 0 && Volatile.Read(ref _disposeRequested) != 0)
        {
            Release();
        }
    }

    private void Release()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }
        _session.Dispose();
        _defaultRunOptions.Dispose();
        if (_sharedWeights is not null)
        {
            _environment.ReturnSharedWeights(_sharedWeights);
        }
    }

    private void AddInputs(RunValues values, IReadOnlyList<NamedTensor> inputs, int[] inputOrder)
    {
        for (var i = 0; i < inputs.Count; i++)
        {
            values.AddInput(_inputs[inputOrder[i]].Name, inputs[i].Data);
        }
    }

    private void Execute(RunValues values, string[] outputNames, OrtValue[] outputValues, CancellationToken cancellationToken) =>
        WithRunOptions(cancellationToken, runOptions =>
        {
            _session.Run(runOptions, values.InputNames, values.Inputs, outputNames, outputValues);
            return 0;
        });

    private IDisposableReadOnlyCollection<OrtValue> Execute(RunValues values, string[] outputNames, CancellationToken cancellationToken) =>
        WithRunOptions(cancellationToken, runOptions => _session.Run(runOptions, values.InputNames, values.Inputs, outputNames));

    private T WithRunOptions<T>(CancellationToken cancellationToken, Func<RunOptions, T> run)
    {
        if (!cancellationToken.CanBeCanceled)
        {
            return run(_defaultRunOptions);
        }
        using var runOptions = new RunOptions();
        // ONNX Runtime polls the terminate flag between kernels. The registration is disposed (waiting for a running
        // callback) before the options are, so the callback never touches released options.
        using (var registration = cancellationToken.Register(static state => ((RunOptions)state!).Terminate = true, runOptions))
        {
            try
            {
                return run(runOptions);
            }
            catch (OnnxRuntimeException ex) when (cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException("The inference run was cancelled.", ex, cancellationToken);
            }
        }
    }

    private static InferenceResult Adopt(IDisposableReadOnlyCollection<OrtValue> values, string[] names)
    {
        // From here each value belongs to exactly one tensor; a failure releases the ones not yet adopted.
        var array = values.ToArray();
        var tensors = new OrtTensor[array.Length];
        var adopted = 0;
        try
        {
            for (; adopted < array.Length; adopted++)
            {
                tensors[adopted] = new OrtTensor(array[adopted], names[adopted]);
            }
            return new InferenceResult(tensors);
        }
        catch
        {
            for (var i = 0; i < adopted; i++)
            {
                tensors[i].Dispose();
            }
            for (var i = adopted + 1; i < array.Length; i++)
            {
                array[i].Dispose();
            }
            throw;
        }
    }

    /// <summary>The shape of every requested output when all of them are known before the run; otherwise null.</summary>
    private long[][]? PlanOutputShapes(IReadOnlyList<NamedTensor> inputs, int[] inputOrder, int[] outputOrder)
    {
        var shapes = new long[outputOrder.Length][];
        for (var i = 0; i < outputOrder.Length; i++)
        {
            if (_outputShapes[outputOrder[i]] is not { } rule)
            {
                return null;
            }
            var shape = rule.Resolve(inputs, inputOrder);
            if (TensorData.CountElements(shape) == 0)
            {
                // Nothing to write into; ONNX Runtime's empty tensor is as cheap.
                return null;
            }
            shapes[i] = shape;
        }
        return shapes;
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

    private static TensorMetadata[] ReadMetadata(IReadOnlyList<string> names, IReadOnlyDictionary<string, NodeMetadata> metadata)
    {
        var result = new TensorMetadata[names.Count];
        for (var i = 0; i < result.Length; i++)
        {
            var node = metadata[names[i]];
            var valueType = (OnnxValueType)(int)node.OnnxValueType;
            if (!node.IsTensor)
            {
                result[i] = new TensorMetadata(names[i], valueType, TensorElementType.Undefined, [], []);
                continue;
            }
            var shape = node.Dimensions.Select(d => (long)d).ToArray();
            var symbolic = node.SymbolicDimensions.Select(s => s ?? string.Empty).ToArray();
            result[i] = new TensorMetadata(names[i], valueType, TensorElementTypeExtensions.FromOrt(node.ElementDataType), shape, symbolic);
        }
        return result;
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

    internal static InferenceSession Create(OrtEnvironment environment, InferenceSessionOptions options, ModelSource model)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(options.IntraOpNumThreads);
        ArgumentOutOfRangeException.ThrowIfNegative(options.InterOpNumThreads);
        ArgumentNullException.ThrowIfNull(options.Cuda);

        string? fallbackReason = null;
        if (options.ExecutionProvider != ExecutionProviderPreference.Cpu)
        {
            var (session, reason) = TryCreateOnCuda(environment, options, model);
            if (session is not null)
            {
                return session;
            }
            if (options.ExecutionProvider == ExecutionProviderPreference.Cuda)
            {
                throw new ExecutionProviderUnavailableException(CudaProvider, reason!);
            }
            fallbackReason = reason;
        }
        return CreateWith(environment, options, model, appendCuda: false, CpuProvider, fallbackReason);
    }

    /// <summary>A session on CUDA, or why there is none. Errors of the model itself surface on the CPU attempt instead.</summary>
    private static (InferenceSession? Session, string? Reason) TryCreateOnCuda(OrtEnvironment environment, InferenceSessionOptions options, ModelSource model)
    {
        if (!environment.HasCudaProvider)
        {
            return (null, $"this ONNX Runtime build ({environment.Version}) has no {OrtEnvironment.CudaExecutionProvider}: " +
                "it is the CPU-only package (built with -p:PlatformOnnxRuntime=Cpu)");
        }
        try
        {
            return (CreateWith(environment, options, model, appendCuda: true, CudaProvider, null), null);
        }
        catch (CudaAppendException ex)
        {
            return (null, ex.Message);
        }
        catch (OnnxRuntimeException ex) when (options.ExecutionProvider == ExecutionProviderPreference.Auto)
        {
            // The provider loaded but the session could not be built on it (device, memory, unsupported graph).
            return (null, $"creating the session on CUDA failed: {OnnxRuntimeErrors.Describe(ex)}");
        }
    }

    private static InferenceSession CreateWith(OrtEnvironment environment, InferenceSessionOptions options, ModelSource model,
        bool appendCuda, string provider, string? fallbackReason)
    {
        var globalThreadPool = options.IntraOpNumThreads == 0 && options.InterOpNumThreads == 0 && environment.GlobalThreadPool is not null;
        using var sessionOptions = CreateSessionOptions(options, globalThreadPool);
        if (appendCuda)
        {
            try
            {
                using var cuda = new OrtCUDAProviderOptions();
                cuda.UpdateOptions(options.Cuda.ToProviderOptions());
                sessionOptions.AppendExecutionProvider_CUDA(cuda);
            }
            catch (OnnxRuntimeException ex)
            {
                throw new CudaAppendException(OnnxRuntimeErrors.Describe(ex), ex);
            }
        }

        var weights = options.SharedWeightsKey is { } key ? environment.LeaseSharedWeights(key, SharedInitializers.Read(model)) : null;
        Ort.InferenceSession? session = null;
        try
        {
            foreach (var (name, entry) in weights?.Initializers ?? [])
            {
                sessionOptions.AddInitializer(name, entry.Value);
            }
            session = (model.Path, weights?.Container) switch
            {
                ({ } path, null) => new Ort.InferenceSession(path, sessionOptions),
                ({ } path, { } container) => new Ort.InferenceSession(path, sessionOptions, container),
                (null, null) => new Ort.InferenceSession(model.Bytes!, sessionOptions),
                (null, { } container) => new Ort.InferenceSession(model.Bytes!, sessionOptions, container),
            };
            return new InferenceSession(environment, session, options, weights, globalThreadPool, provider, fallbackReason);
        }
        catch
        {
            session?.Dispose();
            if (weights is not null)
            {
                environment.ReturnSharedWeights(weights);
            }
            throw;
        }
    }

    private static SessionOptions CreateSessionOptions(InferenceSessionOptions options, bool globalThreadPool)
    {
        var sessionOptions = new SessionOptions();
        try
        {
            sessionOptions.GraphOptimizationLevel = options.GraphOptimizationLevel;
            sessionOptions.ExecutionMode = options.ExecutionMode;
            sessionOptions.EnableMemoryPattern = options.EnableMemoryPattern;
            sessionOptions.EnableCpuMemArena = options.EnableCpuMemoryArena;
            if (globalThreadPool)
            {
                sessionOptions.DisablePerSessionThreads();
            }
            else
            {
                sessionOptions.IntraOpNumThreads = options.IntraOpNumThreads;
                sessionOptions.InterOpNumThreads = options.InterOpNumThreads;
            }
            if (options.LogId is not null)
            {
                sessionOptions.LogId = options.LogId;
            }
            if (options.LogSeverityLevel is { } severity)
            {
                sessionOptions.LogSeverityLevel = severity;
            }
            foreach (var (key, value) in options.ConfigEntries ?? new Dictionary<string, string>())
            {
                sessionOptions.AddSessionConfigEntry(key, value);
            }
            foreach (var (name, value) in options.FreeDimensionOverrides ?? new Dictionary<string, long>())
            {
                sessionOptions.AddFreeDimensionOverrideByName(name, value);
            }
            if (options.ProfileOutputPathPrefix is { } prefix)
            {
                sessionOptions.EnableProfiling = true;
                sessionOptions.ProfileOutputPathPrefix = prefix;
            }
            return sessionOptions;
        }
        catch
        {
            sessionOptions.Dispose();
            throw;
        }
    }

    private readonly struct RunLease(InferenceSession session) : IDisposable
    {
        public void Dispose() => session.ExitRun();
    }

    /// <summary>Appending CUDA failed: the provider cannot load here.</summary>
    private sealed class CudaAppendException(string message, Exception inner) : Exception(message, inner);

    /// <summary>
    /// The OrtValues of one run and the pins of the managed memory they wrap; disposing releases both (values first,
    /// since ONNX Runtime must not see memory that is no longer pinned).
    /// </summary>
    private sealed class RunValues : IDisposable
    {
        private readonly List<OrtValue> _values = [];
        private readonly List<MemoryHandle> _pins = [];

        public List<string> InputNames { get; } = [];

        public List<OrtValue> Inputs { get; } = [];

        public void AddInput(string name, TensorData data)
        {
            InputNames.Add(name);
            Inputs.Add(Wrap(data));
        }

        /// <summary>An OrtValue over <paramref name="data"/>'s own memory (pinned, no copy), or a filled string tensor.</summary>
        public OrtValue Wrap(TensorData data)
        {
            var shape = data.ShapeArray;
            if (data.ElementType == TensorElementType.String)
            {
                var strings = Track(OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, shape));
                var elements = data.Strings!;
                for (var i = 0; i < elements.Count; i++)
                {
                    strings.StringTensorSetElementAt(elements[i].AsSpan(), i);
                }
                return strings;
            }
            if (data.Bytes.IsEmpty)
            {
                // Zero elements: no memory to pin, so ONNX Runtime allocates the empty tensor.
                return Track(OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, data.ElementType.ToOrt(), shape));
            }
            return Wrap(data.ElementType, shape, data.Bytes);
        }

        public unsafe OrtValue Wrap(TensorElementType type, long[] shape, ReadOnlyMemory<byte> memory)
        {
            var pin = memory.Pin();
            _pins.Add(pin);
            return Track(OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, type.ToOrt(), shape, (IntPtr)pin.Pointer, memory.Length));
        }

        public void Dispose()
        {
            foreach (var value in _values)
            {
                value.Dispose();
            }
            foreach (var pin in _pins)
            {
                pin.Dispose();
            }
        }

        private OrtValue Track(OrtValue value)
        {
            _values.Add(value);
            return value;
        }
    }

    /// <summary>
    /// How an output's shape follows from the run's inputs: fixed, or fixed apart from dimension 0, which the model names
    /// like the batch dimension of one of its inputs (e.g. both "batch").
    /// </summary>
    private sealed class OutputShapeRule
    {
        private readonly long[] _shape;
        private readonly int _batchFromInput;

        private OutputShapeRule(long[] shape, int batchFromInput)
        {
            _shape = shape;
            _batchFromInput = batchFromInput;
        }

        public static OutputShapeRule? For(TensorMetadata output, TensorMetadata[] inputs)
        {
            if (output.ValueType != OnnxValueType.Tensor || output.ElementType.SizeInBytes() == 0)
            {
                return null;
            }
            var shape = output.Shape.ToArray();
            for (var d = 1; d < shape.Length; d++)
            {
                if (shape[d] < 0)
                {
                    return null;
                }
            }
            if (shape.Length == 0 || shape[0] >= 0)
            {
                return new OutputShapeRule(shape, -1);
            }
            var symbol = output.SymbolicShape[0];
            if (symbol.Length == 0)
            {
                return null;
            }
            var source = Array.FindIndex(inputs, i => i.Rank > 0 && i.Shape[0] < 0 && i.SymbolicShape[0] == symbol);
            return source < 0 ? null : new OutputShapeRule(shape, source);
        }

        public long[] Resolve(IReadOnlyList<NamedTensor> inputs, int[] inputOrder)
        {
            var shape = (long[])_shape.Clone();
            if (_batchFromInput >= 0)
            {
                shape[0] = inputs[Array.IndexOf(inputOrder, _batchFromInput)].Data.Shape[0];
            }
            return shape;
        }
    }
}
