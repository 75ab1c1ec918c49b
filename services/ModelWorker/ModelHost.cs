using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using Platform.Batching;
using Platform.ModelRegistry;
using Platform.OnnxRuntime;

namespace Platform.ModelWorker;

/// <summary>Load state of a model version on this worker.</summary>
internal enum ModelLoadState
{
    Loading,
    Ready,
    Failed,
}

/// <summary>A model version this worker serves or is preparing to serve.</summary>
internal sealed class LoadedModel(ActiveModelVersion active)
{
    public string Name => active.Name;

    public long Version => active.Version.Version;

    public string Sha256 => active.Version.Sha256;

    public volatile ModelLoadState State = ModelLoadState.Loading;

    public string? FailureReason { get; set; }

    public DateTimeOffset? FailedAt { get; set; }

    public InferenceSession? Session { get; set; }

    public ModelBatcher? Batcher { get; set; }

    public ModelSettings Settings { get; set; } = active.Settings;
}

/// <summary>
/// Makes the set of loaded sessions follow the registry's active versions: object store → local cache → ONNX Runtime
/// session → warm-up run → batcher. Unloading drains the batcher before the session is released, so requests already
/// queued still complete.
/// </summary>
internal sealed partial class ModelHost(
    IActiveModelsView registry,
    ModelArtifactCache artifacts,
    OrtEnvironment ort,
    BatcherTelemetry telemetry,
    IOptions<WorkerOptions> options,
    TimeProvider timeProvider,
    IMeterFactory meterFactory,
    ILoggerFactory loggerFactory) : BackgroundService
{
    private readonly Counter<long> _loadFailures = meterFactory.Create("Platform.ModelWorker").CreateCounter<long>("platform.worker.model.load_failures",
        description: "Model versions that failed to load, by model and cause (missing or damaged artifact, or the runtime refused it)");

    private static readonly TimeSpan FailedRetryDelay = TimeSpan.FromSeconds(30);

    private readonly ConcurrentDictionary<(string Name, long Version), LoadedModel> _models = new();
    private readonly SemaphoreSlim _changed = new(0, 1);
    private readonly ILogger _logger = loggerFactory.CreateLogger<ModelHost>();

    /// <summary>Every model version known to this worker, whatever its state.</summary>
    public IEnumerable<LoadedModel> Models => _models.Values;

    /// <summary>
    /// The entry for a request: the given version, or with <paramref name="version"/> 0 the highest active version.
    /// Null when this worker does not serve it.
    /// </summary>
    public LoadedModel? Find(string name, long version)
    {
        if (version > 0)
        {
            return _models.TryGetValue((name, version), out var model) ? model : null;
        }
        LoadedModel? best = null;
        foreach (var candidate in _models.Values)
        {
            if (candidate.Name == name && (best is null || candidate.Version > best.Version))
            {
                best = candidate;
            }
        }
        return best;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        registry.Changed += OnRegistryChanged;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await ReconcileAsync(registry.Current, stoppingToken);
                // Changes arrive as events; the timeout only serves retries of failed loads.
                try
                {
                    await _changed.WaitAsync(TimeSpan.FromSeconds(5), stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
        finally
        {
            registry.Changed -= OnRegistryChanged;
            foreach (var key in _models.Keys.ToArray())
            {
                await UnloadAsync(key);
            }
        }
    }

    public override void Dispose()
    {
        base.Dispose();
        _changed.Dispose();
    }

    private void OnRegistryChanged(ActiveModelSet set)
    {
        try
        {
            _changed.Release();
        }
        catch (SemaphoreFullException)
        {
            // A reconcile is already pending.
        }
    }

    private async Task ReconcileAsync(ActiveModelSet set, CancellationToken cancellationToken)
    {
        var desired = set.All.ToDictionary(a => (a.Name, a.Version.Version));
        foreach (var key in _models.Keys.Where(k => !desired.ContainsKey(k)).ToArray())
        {
            await UnloadAsync(key);
        }

        foreach (var (key, active) in desired)
        {
            if (_models.TryGetValue(key, out var existing) && existing.Sha256 == active.Version.Sha256)
            {
                if (existing.State == ModelLoadState.Ready && existing.Settings != active.Settings)
                {
                    existing.Settings = active.Settings;
                    existing.Batcher!.Options = ToBatching(active.Settings);
                    LogSettingsApplied(_logger, key.Name, key.Version, active.Settings.MaxBatchSize, active.Settings.MaxQueueDelayMicros);
                }
                if (existing.State != ModelLoadState.Failed || timeProvider.GetUtcNow() - existing.FailedAt < FailedRetryDelay)
                {
                    continue;
                }
                await UnloadAsync(key);
            }

            var model = new LoadedModel(active);
            _models[key] = model;
            await LoadAsync(model, active, cancellationToken);
        }
    }

    private async Task LoadAsync(LoadedModel model, ActiveModelVersion active, CancellationToken cancellationToken)
    {
        var started = timeProvider.GetTimestamp();
        InferenceSession? session = null;
        try
        {
            var path = await artifacts.GetLocalPathAsync(model.Sha256, cancellationToken);
            var settings = options.Value;
            // No threads of its own (the global pool serves every version); weights shared with the model's other versions.
            session = await ort.CreateSessionAsync(path, new InferenceSessionOptions
            {
                ExecutionProvider = settings.ExecutionProvider,
                Cuda = settings.Cuda,
                SharedWeightsKey = model.Name,
                LogId = $"{model.Name}:{model.Version}",
            }, cancellationToken);
            await Task.Run(() => WarmUp(session, model.Name, model.Version, settings.WarmUpRuns), cancellationToken);
            model.Session = session;
            model.Batcher = new ModelBatcher(session, model.Name, model.Version, ToBatching(active.Settings), telemetry, timeProvider,
                loggerFactory.CreateLogger<ModelBatcher>());
            model.State = ModelLoadState.Ready;
            LogLoaded(_logger, model.Name, model.Version, model.Sha256, session.ExecutionProvider,
                timeProvider.GetElapsedTime(started).TotalMilliseconds, model.Batcher.ModelSupportsBatching,
                session.ExecutionProviderFallbackReason ?? "none");
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            session?.Dispose();
            var cause = ex is ArtifactIntegrityException integrity ? integrity.Fault.ToString().ToLowerInvariant() : "load";
            model.FailureReason = ex.Message;
            model.FailedAt = timeProvider.GetUtcNow();
            model.State = ModelLoadState.Failed;
            _loadFailures.Add(1, new KeyValuePair<string, object?>("model", model.Name), new KeyValuePair<string, object?>("cause", cause));
            if (ex is ArtifactIntegrityException)
            {
                // The artifact's own fault: the message says it all, a stack trace would only hide it.
                LogArtifactRefused(_logger, model.Name, model.Version, cause, ex.Message);
            }
            else
            {
                LogLoadFailed(_logger, model.Name, model.Version, model.Sha256, ex);
            }
        }
    }

    private async Task UnloadAsync((string Name, long Version) key)
    {
        if (!_models.TryRemove(key, out var model))
        {
            return;
        }
        if (model.Batcher is { } batcher)
        {
            // Drains: requests already queued still run before the session goes.
            await batcher.DisposeAsync();
        }
        model.Session?.Dispose();
        LogUnloaded(_logger, key.Name, key.Version);
    }

    /// <summary>
    /// <paramref name="runs"/> runs on zeros (dynamic dimensions as 1) so the first real request does not pay for lazy
    /// initialisation (<see cref="WorkerOptions.WarmUpRuns"/>).
    /// </summary>
    private void WarmUp(InferenceSession session, string model, long version, int runs)
    {
        if (runs <= 0)
        {
            return;
        }

        var started = timeProvider.GetTimestamp();
        try
        {
            var inputs = new List<NamedTensor>();
            foreach (var input in session.Inputs)
            {
                var shape = input.Shape.Select(d => d < 0 ? 1 : d).ToArray();
                var count = shape.Aggregate(1L, (a, d) => a * d);
                inputs.Add(new NamedTensor(input.Name, input.ElementType == TensorElementType.String
                    ? TensorData.FromStrings(Enumerable.Repeat(string.Empty, (int)count).ToArray(), shape)
                    : TensorData.FromBytes(input.ElementType, new byte[count * input.ElementType.SizeInBytes()], shape)));
            }
            for (var run = 0; run < runs; run++)
            {
                using var _ = session.Run(inputs);
            }
            LogWarmedUp(_logger, model, version, runs, timeProvider.GetElapsedTime(started).TotalMilliseconds);
        }
        catch (Exception ex) when (ex is OnnxRuntimeException or ArgumentException)
        {
            // Zeros are not valid input for every model (e.g. an index out of range); the model still serves real requests.
            LogWarmUpFailed(_logger, ex.Message);
        }
    }

    private BatchingOptions ToBatching(ModelSettings settings) =>
        new(settings.MaxBatchSize, TimeSpan.FromMicroseconds(settings.MaxQueueDelayMicros), settings.QueueCapacity)
        {
            DispatchWhenIdle = options.Value.DispatchWhenIdle,
        };

    [LoggerMessage(EventId = 40, Level = LogLevel.Information,
        Message = "Loaded {Model} version {Version} ({Sha256}) on {ExecutionProvider} in {ElapsedMs:0} ms; batching {Batching}; CUDA fallback reason: {FallbackReason}")]
    private static partial void LogLoaded(ILogger logger, string model, long version, string sha256, string executionProvider, double elapsedMs, bool batching,
        string fallbackReason);

    [LoggerMessage(EventId = 41, Level = LogLevel.Error, Message = "Loading {Model} version {Version} ({Sha256}) failed")]
    private static partial void LogLoadFailed(ILogger logger, string model, long version, string sha256, Exception exception);

    [LoggerMessage(EventId = 45, Level = LogLevel.Error,
        Message = "Refused to load {Model} version {Version} ({Cause} artifact): {Reason}; the version stays unserved on this worker, retried every 30 s")]
    private static partial void LogArtifactRefused(ILogger logger, string model, long version, string cause, string reason);

    [LoggerMessage(EventId = 42, Level = LogLevel.Information, Message = "Unloaded {Model} version {Version}")]
    private static partial void LogUnloaded(ILogger logger, string model, long version);

    [LoggerMessage(EventId = 43, Level = LogLevel.Information, Message = "Applied settings to {Model} version {Version}: max batch {MaxBatchSize}, max delay {MaxQueueDelayMicros} µs")]
    private static partial void LogSettingsApplied(ILogger logger, string model, long version, int maxBatchSize, long maxQueueDelayMicros);

    [LoggerMessage(EventId = 46, Level = LogLevel.Information, Message = "Warmed up {Model} version {Version}: {Runs} runs in {ElapsedMs:0} ms")]
    private static partial void LogWarmedUp(ILogger logger, string model, long version, int runs, double elapsedMs);

    [LoggerMessage(EventId = 44, Level = LogLevel.Warning, Message = "Warm-up run failed (the model is served anyway): {Reason}")]
    private static partial void LogWarmUpFailed(ILogger logger, string reason);
}
