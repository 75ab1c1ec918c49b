using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Platform.Inference.Routing;

/// <summary>Registration of <see cref="WorkerClient"/>.</summary>
public static class RoutingServiceCollectionExtensions
{
    /// <summary>
    /// Registers a singleton <see cref="WorkerClient"/> with options from section <c>WorkerRouting</c> and, unless one is
    /// registered already, the configuration-based <see cref="IWorkerReplicaSource"/> (needs service discovery: AddServiceDefaults).
    /// </summary>
    public static IServiceCollection AddWorkerRouting(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<WorkerRoutingOptions>().BindConfiguration(WorkerRoutingOptions.SectionName);
        services.TryAddSingleton<IWorkerReplicaSource, ConfigurationWorkerReplicaSource>();
        services.TryAddSingleton<WorkerClient>();
        return services;
    }
}
