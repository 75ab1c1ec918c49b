using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http;
using Microsoft.Extensions.Options;
using Platform.ServiceDefaults.ServiceDiscovery;

namespace Platform.ServiceDefaults.Resilience;

/// <summary>HttpClient builder extensions for the Platform resilience and service discovery handlers.</summary>
public static class ResilienceHttpClientBuilderExtensions
{
    /// <summary>
    /// Adds the default resilience handler (total timeout, retries for idempotent methods, circuit breaker, attempt timeout).
    /// Called for every client by <c>AddServiceDefaults</c>.
    /// </summary>
    public static IHttpClientBuilder AddDefaultResilience(this IHttpClientBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);

        // HttpMessageHandlerBuilder carries the client name, which the defaults-level builder does not know.
        builder.Services.Configure<HttpClientFactoryOptions>(builder.Name, options =>
            options.HttpMessageHandlerBuilderActions.Add(handlers =>
                handlers.AdditionalHandlers.Add(new ResilienceHandler(
                    handlers.Services.GetRequiredService<HttpResiliencePipelineProvider>(),
                    handlers.Name ?? Options.DefaultName))));
        return builder;
    }

    /// <summary>Opts this named client out of the default resilience pipeline (it does its own retries).</summary>
    public static IHttpClientBuilder DisableDefaultResilience(this IHttpClientBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.Configure<HttpResilienceOptions>(builder.Name, o => o.Enabled = false);
        return builder;
    }

    /// <summary>Adds the handler that rewrites logical service URIs (http://admin-api/...) to a concrete replica.</summary>
    public static IHttpClientBuilder AddServiceDiscovery(this IHttpClientBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.Configure<HttpClientFactoryOptions>(builder.Name, options =>
            options.HttpMessageHandlerBuilderActions.Add(handlers =>
                handlers.AdditionalHandlers.Add(new ServiceDiscoveryHandler(
                    handlers.Services.GetRequiredService<IServiceEndpointResolver>(),
                    handlers.Services.GetRequiredService<IOptionsMonitor<ServiceDiscoveryOptions>>().Get(handlers.Name ?? Options.DefaultName).Enabled))));
        return builder;
    }

    /// <summary>Opts this named client out of service discovery: its URIs are used as written.</summary>
    public static IHttpClientBuilder DisableServiceDiscovery(this IHttpClientBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.Configure<ServiceDiscoveryOptions>(builder.Name, o => o.Enabled = false);
        return builder;
    }
}
