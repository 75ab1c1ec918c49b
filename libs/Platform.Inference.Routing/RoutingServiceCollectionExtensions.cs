using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Platform.WorkerDiscovery;
using StackExchange.Redis;

namespace Platform.Inference.Routing;

/// <summary>Registration of <see cref="WorkerClient"/>.</summary>
public static class RoutingServiceCollectionExtensions
{
    /// <summary>
    /// Registers a singleton <see cref="WorkerClient"/> with options from section <c>WorkerRouting</c>, and the worker directory
    /// it picks replicas from (announced in Redis: needs an <c>IConnectionMultiplexer</c> (Aspire.StackExchange.Redis: AddRedisClient)).
    /// </summary>
    public static IServiceCollection AddWorkerRouting(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<WorkerRoutingOptions>().BindConfiguration(WorkerRoutingOptions.SectionName);
        services.AddWorkerDirectory();
        services.TryAddSingleton<WorkerClient>();
        return services;
    }
}
