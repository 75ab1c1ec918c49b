using Microsoft.Extensions.DependencyInjection;
using Platform.Hosting.Publishing.Kubernetes;
using Platform.Hosting.Publishing.Manifest;

namespace Platform.Hosting.Publishing;

/// <summary>Registers the publishers <c>--publisher</c> can name.</summary>
public static class PublishingServiceCollectionExtensions
{
    /// <summary>Adds every publisher of this assembly: <c>manifest</c> (Aspire's JSON) and <c>kubernetes</c> (Aspirate's kustomize layout).</summary>
    public static IServiceCollection AddPlatformPublishers(this IServiceCollection services)
    {
        services.AddSingleton<IDistributedApplicationPublisher, ManifestPublisher>();
        services.AddSingleton<IDistributedApplicationPublisher, KubernetesPublisher>();
        return services;
    }
}
