namespace Platform.ServiceDefaults.ServiceDiscovery;

/// <summary>One concrete address of a logical service (one replica's endpoint).</summary>
/// <param name="ServiceName">Logical service name, e.g. "admin-api".</param>
/// <param name="EndpointName">Endpoint name, by convention the scheme: "http" or "https".</param>
/// <param name="Index">Replica index from the configuration key.</param>
/// <param name="Address">Absolute base address, e.g. http://127.0.0.1:5123/.</param>
public sealed record ServiceEndpoint(string ServiceName, string EndpointName, int Index, Uri Address);

/// <summary>
/// Resolves logical service names to concrete endpoints, Aspire-style, from configuration keys
/// <c>services:{name}:{endpoint}:{index}</c> (environment <c>services__{name}__{endpoint}__{index}</c>).
/// </summary>
public interface IServiceEndpointResolver
{
    /// <summary>All configured endpoints of <paramref name="serviceName"/> across endpoint names, ordered by endpoint name then index.</summary>
    /// <exception cref="ServiceEndpointNotFoundException">No endpoint is configured for the service.</exception>
    ValueTask<IReadOnlyList<ServiceEndpoint>> GetEndpointsAsync(string serviceName, CancellationToken cancellationToken = default);

    /// <summary>
    /// Rewrites a logical URI such as <c>http://admin-api/models</c> or <c>https+http://admin-api/models</c> to one concrete
    /// replica, round-robin. URIs whose host is not a service name (contains a dot, is an IP or localhost) pass through unchanged.
    /// </summary>
    /// <exception cref="ServiceEndpointNotFoundException">The host looks like a service name but nothing is configured for it.</exception>
    ValueTask<Uri> ResolveAsync(Uri logicalUri, CancellationToken cancellationToken = default);
}

/// <summary>Raised when a logical service name has no configured endpoints.</summary>
public sealed class ServiceEndpointNotFoundException : InvalidOperationException
{
    /// <summary>Creates the exception for <paramref name="serviceName"/> and the endpoint names that were tried.</summary>
    public ServiceEndpointNotFoundException(string serviceName, IReadOnlyList<string> endpointNames)
        : base(BuildMessage(serviceName, endpointNames))
    {
        ServiceName = serviceName;
    }

    /// <summary>The logical service name that could not be resolved.</summary>
    public string ServiceName { get; }

    private static string BuildMessage(string serviceName, IReadOnlyList<string> endpointNames)
    {
        var endpoint = endpointNames.Count > 0 ? endpointNames[0] : "http";
        return $"No endpoints configured for service '{serviceName}' (endpoint {string.Join(" or ", endpointNames.Select(e => $"'{e}'"))}). "
            + $"Expected configuration keys like 'services:{serviceName}:{endpoint}:0' (environment variable 'services__{serviceName}__{endpoint}__0'); "
            + "check that the AppHost references this service.";
    }
}
