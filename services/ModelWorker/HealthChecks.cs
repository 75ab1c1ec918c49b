using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Platform.OnnxModels;
using Platform.OnnxRuntime;

namespace Platform.ModelWorker;

/// <summary>
/// "onnxruntime": the runtime version, the providers its build offers and the provider sessions actually run on, with
/// the reason when CUDA was wanted but CPU is live. A tiny probe session answers that before any model is loaded.
/// </summary>
internal sealed class OnnxRuntimeHealthCheck(OrtEnvironment ort, ModelHost host, IOptions<WorkerOptions> options) : IHealthCheck
{
    private readonly Lazy<(string Provider, string? FallbackReason)> _probe = new(() =>
    {
        var graph = new OnnxGraphBuilder("probe");
        graph.AddInput("x", OnnxDataType.Float, 1);
        graph.AddOutput("y", OnnxDataType.Float, 1);
        graph.AddNode("Identity", ["x"], ["y"]);
        using var session = ort.CreateSession(graph.ToBytes(), new InferenceSessionOptions
        {
            ExecutionProvider = options.Value.PreferCuda ? ExecutionProviderPreference.Auto : ExecutionProviderPreference.Cpu,
            IntraOpNumThreads = 1,
        });
        return (session.ExecutionProvider, session.ExecutionProviderFallbackReason);
    });

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var loaded = host.Models.Where(m => m.Session is not null).Select(m => m.Session!).FirstOrDefault();
            var (provider, reason) = loaded is not null ? (loaded.ExecutionProvider, loaded.ExecutionProviderFallbackReason) : _probe.Value;
            var data = new Dictionary<string, object>
            {
                ["version"] = ort.Version,
                ["availableProviders"] = string.Join(",", ort.AvailableProviders),
                ["executionProvider"] = provider,
            };
            if (reason is not null)
            {
                data["fallbackReason"] = reason;
            }
            var description = $"ONNX Runtime {ort.Version} on {provider}" + (reason is null ? string.Empty : $" (CUDA not used: {reason})");
            return Task.FromResult(HealthCheckResult.Healthy(description, data));
        }
        catch (Exception ex) when (ex is OnnxRuntimeException or InvalidOperationException)
        {
            return Task.FromResult(new HealthCheckResult(context.Registration.FailureStatus, $"ONNX Runtime cannot create a session: {ex.Message}", ex));
        }
    }
}

/// <summary>
/// "models": per-version load state. Always healthy: a model that failed to load must not take the worker (and every
/// other model on it) out of rotation; its reason is in the data and in <c>GET /v1/models</c>.
/// </summary>
internal sealed class ModelsHealthCheck(ModelHost host) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var models = host.Models.OrderBy(m => m.Name, StringComparer.Ordinal).ThenBy(m => m.Version).ToArray();
        var data = models.ToDictionary(m => $"{m.Name}/{m.Version}", m => (object)(m.State == ModelLoadState.Failed
            ? $"{m.State}: {m.FailureReason}" : m.State.ToString()));
        var description = $"{models.Count(m => m.State == ModelLoadState.Ready)} ready, {models.Count(m => m.State == ModelLoadState.Loading)} loading, " +
            $"{models.Count(m => m.State == ModelLoadState.Failed)} failed";
        return Task.FromResult(HealthCheckResult.Healthy(description, data));
    }
}
