using Microsoft.Extensions.DependencyInjection;
using Platform.Hosting.Orchestration;

namespace Platform.Hosting.Dashboard;

/// <summary>Stop, start and restart of a resource or one replica, as the dashboard's action buttons call them.</summary>
public interface IResourceActions
{
    /// <summary>Stops a resource (all replicas) or one replica.</summary>
    Task StopAsync(string resource, string? instanceId, CancellationToken cancellationToken);

    /// <summary>Starts a stopped resource or replica with the same ports.</summary>
    Task StartAsync(string resource, string? instanceId, CancellationToken cancellationToken);

    /// <summary>Stops and starts a resource or replica.</summary>
    Task RestartAsync(string resource, string? instanceId, CancellationToken cancellationToken);
}

/// <summary>Actions through the run-mode orchestrator.</summary>
/// <remarks>
/// The orchestrator is resolved on first use: its options carry the dashboard's OTLP endpoint, so resolving it
/// while the dashboard is being built would be a cycle.
/// </remarks>
internal sealed class OrchestratorResourceActions(IServiceProvider services) : IResourceActions
{
    private DistributedApplicationOrchestrator Orchestrator => services.GetRequiredService<DistributedApplicationOrchestrator>();

    public Task StopAsync(string resource, string? instanceId, CancellationToken cancellationToken) =>
        Orchestrator.StopResourceAsync(resource, instanceId);

    public Task StartAsync(string resource, string? instanceId, CancellationToken cancellationToken) =>
        Orchestrator.StartResourceAsync(resource, instanceId, cancellationToken);

    public Task RestartAsync(string resource, string? instanceId, CancellationToken cancellationToken) =>
        Orchestrator.RestartResourceAsync(resource, instanceId, cancellationToken);
}
