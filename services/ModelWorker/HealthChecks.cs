using Microsoft.Extensions.Diagnostics.HealthChecks;
using Platform.OnnxRuntime;

namespace Platform.ModelWorker;

/// <summary>
/// "onnxruntime": the runtime version, the providers its build offers, the provider asked for and the one sessions
/// actually run on, with ONNX Runtime's reason when CUDA was tried but CPU is live, and the global thread pool.
/// </summary>
internal sealed class OnnxRuntimeHealthCheck(ExecutionProviderStatus status) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var ort = status.Ort;
        var data = new Dictionary<string, object>
        {
            ["version"] = ort.Version,
            ["availableProviders"] = string.Join(",", ort.AvailableProviders),
            ["requestedProvider"] = status.Requested.ToString().ToLowerInvariant(),
            ["executionProvider"] = status.Provider ?? "unavailable",
            ["intraOpThreads"] = ort.GlobalThreadPool?.IntraOpNumThreads.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "per session",
        };
        if (status.Failure is { } failure)
        {
            data["failure"] = failure;
            return Task.FromResult(new HealthCheckResult(context.Registration.FailureStatus, $"ONNX Runtime {ort.Version}: {failure}", data: data));
        }
        if (status.FallbackReason is { } reason)
        {
            data["fallbackReason"] = reason;
        }
        var description = $"ONNX Runtime {ort.Version} on {status.Provider}" + (status.FallbackReason is { } why ? $" (CUDA not used: {why})" : string.Empty);
        return Task.FromResult(HealthCheckResult.Healthy(description, data));
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
            ? $"{m.State}: {m.FailureReason}" : $"{m.State}{(m.Session is { } s ? $" on {s.ExecutionProvider}" : string.Empty)}"));
        var description = $"{models.Count(m => m.State == ModelLoadState.Ready)} ready, {models.Count(m => m.State == ModelLoadState.Loading)} loading, " +
            $"{models.Count(m => m.State == ModelLoadState.Failed)} failed";
        return Task.FromResult(HealthCheckResult.Healthy(description, data));
    }
}
