using System.Globalization;

namespace Platform.ModelWorker;

/// <summary>
/// The worker's HTTP/1.1 surface next to health and metrics: the JSON model listing (<c>GET /v1/models</c>) and
/// per-version readiness, for platform services and operators holding the internal credential. Inference is on the gRPC endpoint (<see cref="WorkerGrpcService"/>).
/// </summary>
internal static class InferenceEndpoints
{
    public static void MapInferenceEndpoints(this WebApplication app)
    {
        var models = app.MapGroup("/v1/models").AddEndpointFilter<InternalKeyFilter>();
        models.MapGet("/", (ModelHost host, WorkerIdentity identity) => Results.Ok(new
        {
            instance = identity.InstanceId,
            models = host.Models.OrderBy(m => m.Name, StringComparer.Ordinal).ThenBy(m => m.Version).Select(Describe),
        }));
        models.MapGet("/{name}/versions/{version}/ready", (string name, string version, ModelHost host) =>
        {
            if (!long.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number < 1)
            {
                return Results.BadRequest(new { error = $"version: '{version}' is not a positive integer" });
            }
            var model = host.Find(name, number);
            return model is null
                ? Results.NotFound(new { error = $"model '{name}' version {number} is not active on this worker" })
                : Results.Json(Describe(model), statusCode: model.State == ModelLoadState.Ready ? 200 : 503);
        });
    }

    private static object Describe(LoadedModel m) => new
    {
        name = m.Name,
        version = m.Version,
        sha256 = m.Sha256,
        state = m.State.ToString().ToLowerInvariant(),
        ready = m.State == ModelLoadState.Ready,
        reason = m.FailureReason,
        executionProvider = m.Session?.ExecutionProvider,
        executionProviderFallbackReason = m.Session?.ExecutionProviderFallbackReason,
        batching = m.Batcher?.ModelSupportsBatching,
        queueDepth = m.Batcher?.QueueDepth,
        settings = m.Settings,
    };
}

/// <summary>This replica's identity as the AppHost names it (<c>service.instance.id</c>).</summary>
internal sealed record WorkerIdentity(string InstanceId)
{
    public static WorkerIdentity From(IConfiguration configuration) => new(Platform.WorkerDiscovery.WorkerAnnouncer.InstanceIdFrom(configuration));
}
