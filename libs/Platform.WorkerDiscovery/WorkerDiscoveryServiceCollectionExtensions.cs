using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using StackExchange.Redis;

namespace Platform.WorkerDiscovery;

/// <summary>Registration of worker announcements (in workers) and of the worker directory (in callers).</summary>
public static class WorkerDiscoveryServiceCollectionExtensions
{
    /// <summary>Announces this process as a worker replica (needs an <c>IConnectionMultiplexer</c> (Aspire.StackExchange.Redis: AddRedisClient)).</summary>
    public static IServiceCollection AddWorkerAnnouncement(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<WorkerDiscoveryOptions>().BindConfiguration(WorkerDiscoveryOptions.SectionName);
        services.TryAddSingleton<WorkerAnnouncer>();
        services.AddHostedService(sp => sp.GetRequiredService<WorkerAnnouncer>());
        return services;
    }

    /// <summary>Keeps a live <see cref="IWorkerDirectory"/> of the announced workers (needs an <c>IConnectionMultiplexer</c> (Aspire.StackExchange.Redis: AddRedisClient)).</summary>
    public static IServiceCollection AddWorkerDirectory(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<WorkerDiscoveryOptions>().BindConfiguration(WorkerDiscoveryOptions.SectionName);
        services.TryAddSingleton<WorkerDirectory>();
        services.TryAddSingleton<IWorkerDirectory>(sp => sp.GetRequiredService<WorkerDirectory>());
        services.AddHostedService(sp => sp.GetRequiredService<WorkerDirectory>());
        return services;
    }
}
