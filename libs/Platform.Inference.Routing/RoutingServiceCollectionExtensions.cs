using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Platform.Inference.Protocol;
using Platform.WorkerDiscovery;

namespace Platform.Inference.Routing;

/// <summary>Registration of <see cref="WorkerClient"/>.</summary>
public static class RoutingServiceCollectionExtensions
{
    /// <summary>
    /// Registers a singleton <see cref="WorkerClient"/> with options from section <c>WorkerRouting</c> and, unless one is
    /// registered already, <see cref="AnnouncedWorkerReplicaSource"/> over the worker directory (the replicas' announcements
    /// in Redis: needs an <c>IConnectionMultiplexer</c>, e.g. Platform.Redis' AddPlatformRedisClient). The internal
    /// credential comes from <c>Parameters:internal-api-key</c>; start-up fails without it (the workers would refuse every call).
    /// </summary>
    public static IServiceCollection AddWorkerRouting(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<WorkerRoutingOptions>()
            .BindConfiguration(WorkerRoutingOptions.SectionName)
            .Configure<IConfiguration>((options, configuration) => options.InternalApiKey ??= configuration[InternalCredential.ConfigurationKey])
            .Validate(options => options.InternalApiKey is { Length: >= InternalCredential.MinimumLength },
                $"{InternalCredential.ConfigurationKey} must be set (at least {InternalCredential.MinimumLength} characters): model workers serve only callers holding the internal credential")
            .ValidateOnStart();
        services.AddWorkerDirectory();
        services.TryAddSingleton<IWorkerReplicaSource, AnnouncedWorkerReplicaSource>();
        services.TryAddSingleton<WorkerClient>();
        return services;
    }
}
