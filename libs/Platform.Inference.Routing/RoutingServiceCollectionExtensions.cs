using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Platform.WorkerDiscovery;

namespace Platform.Inference.Routing;

/// <summary>Registration of <see cref="WorkerClient"/>.</summary>
public static class RoutingServiceCollectionExtensions
{
    /// <summary>
    /// Registers a singleton <see cref="WorkerClient"/> with options from section <c>WorkerRouting</c> and, unless one is
    /// registered already, <see cref="AnnouncedWorkerReplicaSource"/> over the worker directory (the replicas' announcements
    /// in Redis: needs an <c>IConnectionMultiplexer</c>, e.g. Platform.Redis' AddPlatformRedisClient).
    /// </summary>
    public static IServiceCollection AddWorkerRouting(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<WorkerRoutingOptions>().BindConfiguration(WorkerRoutingOptions.SectionName);
        services.AddWorkerDirectory();
        services.TryAddSingleton<IWorkerReplicaSource, AnnouncedWorkerReplicaSource>();
        services.TryAddSingleton<WorkerClient>();
        return services;
    }
}
