using Microsoft.Extensions.Options;
using OpenTelemetry;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Platform.OnnxModels;
using Platform.OnnxRuntime;

namespace Platform.ModelWorker;

/// <summary>Registers ONNX Runtime for the worker: the environment, the execution provider check, health and telemetry.</summary>
internal static class OnnxRuntimeSetup
{
    /// <summary>Resource attribute naming the live execution provider (CUDA or CPU) of this replica.</summary>
    public const string ExecutionProviderAttribute = "onnxruntime.execution_provider";

    /// <summary>Resource attribute with the provider asked for (auto, cuda, cpu).</summary>
    public const string RequestedProviderAttribute = "onnxruntime.execution_provider.requested";

    /// <summary>Resource attribute with ONNX Runtime's reason CUDA is not live, when auto fell back to CPU.</summary>
    public const string FallbackReasonAttribute = "onnxruntime.execution_provider.fallback_reason";

    /// <summary>Resource attribute with the ONNX Runtime version.</summary>
    public const string VersionAttribute = "onnxruntime.version";

    public static IHostApplicationBuilder AddPlatformOnnxRuntime(this IHostApplicationBuilder builder)
    {
        // Wrong settings stop start-up with a message naming the setting, before ONNX Runtime sees them.
        builder.Services.AddOptions<WorkerOptions>()
            .Validate(o => Enum.IsDefined(o.ExecutionProvider), "ModelWorker:ExecutionProvider must be auto, cuda or cpu")
            .Validate(o => o.IntraOpNumThreads >= 0, "ModelWorker:IntraOpNumThreads must be 0 (ONNX Runtime's default) or more")
            .Validate(o => o.Cuda.DeviceId >= 0, "ModelWorker:Cuda:DeviceId must be 0 or more")
            .Validate(o => o.Cuda.GpuMemoryLimitBytes is null or > 0, "ModelWorker:Cuda:GpuMemoryLimitBytes must be positive when set")
            .Validate(o => Enum.IsDefined(o.Cuda.ArenaExtendStrategy), "ModelWorker:Cuda:ArenaExtendStrategy must be NextPowerOfTwo or SameAsRequested")
            .Validate(o => Enum.IsDefined(o.Cuda.CudnnConvAlgorithmSearch), "ModelWorker:Cuda:CudnnConvAlgorithmSearch must be Exhaustive, Heuristic or Default")
            .ValidateOnStart();

        // One process-wide environment: its global thread pool is what ModelWorker:IntraOpNumThreads sizes.
        builder.Services.AddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<WorkerOptions>>().Value;
            return new OrtEnvironment(new OrtEnvironmentOptions
            {
                IntraOpNumThreads = options.IntraOpNumThreads,
                AllowSpinning = options.AllowSpinning,
                LogId = "model-worker",
            });
        });
        builder.Services.AddSingleton<ExecutionProviderStatus>();
        // Before the model host starts loading: with ExecutionProvider=cuda and no CUDA the worker must not start.
        builder.Services.AddHostedService<OnnxRuntimeStartupCheck>();
        builder.Services.AddHealthChecks().AddCheck<OnnxRuntimeHealthCheck>("onnxruntime");

        // The dashboard shows a replica's resource attributes; the provider is a fact about the replica, not a request.
        void Describe(ResourceBuilder resource) => resource.AddDetector(sp => new ExecutionProviderResourceDetector(sp.GetRequiredService<ExecutionProviderStatus>()));
        builder.Services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.ConfigureResource(Describe));
        builder.Services.ConfigureOpenTelemetryMeterProvider(metrics => metrics.ConfigureResource(Describe));
        builder.Services.ConfigureOpenTelemetryLoggerProvider(logging => logging.ConfigureResource(Describe));
        return builder;
    }
}

/// <summary>The replica's ONNX Runtime facts as OpenTelemetry resource attributes (see <see cref="OnnxRuntimeSetup"/>).</summary>
internal sealed class ExecutionProviderResourceDetector(ExecutionProviderStatus status) : IResourceDetector
{
    public Resource Detect()
    {
        var attributes = new Dictionary<string, object>
        {
            [OnnxRuntimeSetup.VersionAttribute] = status.Version,
            [OnnxRuntimeSetup.RequestedProviderAttribute] = status.Requested.ToString().ToLowerInvariant(),
            [OnnxRuntimeSetup.ExecutionProviderAttribute] = status.Provider ?? "unavailable",
        };
        if ((status.FallbackReason ?? status.Failure) is { } reason)
        {
            attributes[OnnxRuntimeSetup.FallbackReasonAttribute] = reason;
        }
        return new Resource(attributes);
    }
}

/// <summary>
/// The execution provider this worker runs on, found once by loading a one-node probe model with the configured
/// preference: CUDA or CPU, and with <c>auto</c> ONNX Runtime's reason when CUDA did not load. With <c>cuda</c> and no
/// CUDA, <see cref="Failure"/> says what could not load and the worker refuses to start.
/// </summary>
internal sealed class ExecutionProviderStatus
{
    private readonly Lazy<(string? Provider, string? FallbackReason, string? Failure)> _probe;

    public ExecutionProviderStatus(OrtEnvironment ort, IOptions<WorkerOptions> options)
    {
        Ort = ort;
        Requested = options.Value.ExecutionProvider;
        var cuda = options.Value.Cuda;
        _probe = new(() =>
        {
            var graph = new OnnxGraphBuilder("provider_probe");
            graph.AddInput("x", OnnxDataType.Float, 1);
            graph.AddOutput("y", OnnxDataType.Float, 1);
            graph.AddNode("Identity", ["x"], ["y"]);
            try
            {
                using var session = ort.CreateSession(graph.ToBytes(), new InferenceSessionOptions
                {
                    ExecutionProvider = Requested,
                    Cuda = cuda,
                    LogId = "provider-probe",
                });
                return (session.ExecutionProvider, session.ExecutionProviderFallbackReason, null);
            }
            catch (ExecutionProviderUnavailableException ex)
            {
                return (null, null, ex.Message);
            }
        });
    }

    public OrtEnvironment Ort { get; }

    public string Version => Ort.Version;

    /// <summary>What <c>ModelWorker:ExecutionProvider</c> asks for.</summary>
    public ExecutionProviderPreference Requested { get; }

    /// <summary><see cref="InferenceSession.CudaProvider"/> or <see cref="InferenceSession.CpuProvider"/>; null when the required provider is unavailable.</summary>
    public string? Provider => _probe.Value.Provider;

    /// <summary>Why CUDA is not live although <c>auto</c> tried it.</summary>
    public string? FallbackReason => _probe.Value.FallbackReason;

    /// <summary>Why the required provider (<c>cuda</c>) cannot be used; the worker does not start.</summary>
    public string? Failure => _probe.Value.Failure;
}

/// <summary>Fails start-up when the required execution provider cannot load, and logs which provider is live.</summary>
internal sealed partial class OnnxRuntimeStartupCheck(ExecutionProviderStatus status, ILogger<OnnxRuntimeStartupCheck> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var threads = status.Ort.GlobalThreadPool;
        var pool = threads is null ? "per session" : threads.IntraOpNumThreads == 0 ? "global, one thread per core" : $"global, {threads.IntraOpNumThreads} threads";
        if (status.Failure is { } failure)
        {
            LogProviderUnavailable(logger, status.Version, failure);
            throw new InvalidOperationException($"ModelWorker:ExecutionProvider is 'cuda' but {failure}");
        }
        if (status.FallbackReason is { } reason)
        {
            LogFellBack(logger, status.Version, status.Provider!, reason, pool, string.Join(",", status.Ort.AvailableProviders));
        }
        else
        {
            LogProvider(logger, status.Version, status.Provider!, status.Requested.ToString().ToLowerInvariant(), pool,
                string.Join(",", status.Ort.AvailableProviders));
        }
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 30, Level = LogLevel.Information,
        Message = "ONNX Runtime {OrtVersion}: execution provider {ExecutionProvider} (requested {RequestedProvider}); intra-op thread pool {ThreadPool}; build providers {AvailableProviders}")]
    private static partial void LogProvider(ILogger logger, string ortVersion, string executionProvider, string requestedProvider, string threadPool, string availableProviders);

    [LoggerMessage(EventId = 31, Level = LogLevel.Warning,
        Message = "ONNX Runtime {OrtVersion}: execution provider {ExecutionProvider} (requested auto; CUDA not used: {FallbackReason}); intra-op thread pool {ThreadPool}; build providers {AvailableProviders}")]
    private static partial void LogFellBack(ILogger logger, string ortVersion, string executionProvider, string fallbackReason, string threadPool, string availableProviders);

    [LoggerMessage(EventId = 32, Level = LogLevel.Critical,
        Message = "ONNX Runtime {OrtVersion}: ModelWorker:ExecutionProvider is 'cuda' but {Failure}; the worker does not start")]
    private static partial void LogProviderUnavailable(ILogger logger, string ortVersion, string failure);
}
