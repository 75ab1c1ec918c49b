using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.Configuration;

namespace Platform.ServiceDefaults.ServiceDiscovery;

/// <summary>
/// Reads endpoints from configuration on every call (cheap, and follows configuration reloads) and keeps one
/// round-robin cursor per service and endpoint name for the lifetime of the resolver.
/// </summary>
internal sealed class ConfigurationServiceEndpointResolver(IConfiguration configuration) : IServiceEndpointResolver
{
    private const string SectionName = "services";
    private readonly ConcurrentDictionary<string, StrongBox> _cursors = new(StringComparer.OrdinalIgnoreCase);

    public ValueTask<IReadOnlyList<ServiceEndpoint>> GetEndpointsAsync(string serviceName, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(serviceName);
        var service = configuration.GetSection(SectionName).GetSection(serviceName);
        var endpoints = service.GetChildren()
            .OrderBy(c => c.Key, StringComparer.OrdinalIgnoreCase)
            .SelectMany(endpoint => ReadEndpoints(serviceName, endpoint.Key))
            .ToArray();
        if (endpoints.Length == 0)
        {
            throw new ServiceEndpointNotFoundException(serviceName, service.GetChildren().Select(c => c.Key).DefaultIfEmpty("http").ToArray());
        }

        return ValueTask.FromResult<IReadOnlyList<ServiceEndpoint>>(endpoints);
    }

    public ValueTask<Uri> ResolveAsync(Uri logicalUri, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(logicalUri);
        if (!logicalUri.IsAbsoluteUri)
        {
            return ValueTask.FromResult(logicalUri);
        }

        var serviceName = logicalUri.Host;
        var endpointNames = logicalUri.Scheme.Split('+', StringSplitOptions.RemoveEmptyEntries);
        var isPreferenceScheme = endpointNames.Length > 1;

        // "_grpc.admin-api" names a specific endpoint, as in Aspire.
        string? namedEndpoint = null;
        if (serviceName.StartsWith('_') && serviceName.IndexOf('.') is var dot and > 1)
        {
            namedEndpoint = serviceName[1..dot];
            serviceName = serviceName[(dot + 1)..];
        }

        var configured = configuration.GetSection(SectionName).GetSection(serviceName).Exists();
        if (!configured && !isPreferenceScheme && namedEndpoint is null && !LooksLikeServiceName(serviceName))
        {
            return ValueTask.FromResult(logicalUri);
        }

        var candidates = namedEndpoint is not null ? [namedEndpoint] : endpointNames;
        foreach (var endpointName in candidates)
        {
            var endpoints = ReadEndpoints(serviceName, endpointName);
            if (endpoints.Count == 0)
            {
                continue;
            }

            var cursor = _cursors.GetOrAdd($"{serviceName}|{endpointName}", static _ => new StrongBox());
            var next = Interlocked.Increment(ref cursor.Value) - 1;
            var chosen = endpoints[(int)((uint)next % (uint)endpoints.Count)];
            return ValueTask.FromResult(Rewrite(logicalUri, chosen.Address));
        }

        throw new ServiceEndpointNotFoundException(serviceName, candidates);
    }

    private List<ServiceEndpoint> ReadEndpoints(string serviceName, string endpointName)
    {
        var result = new List<ServiceEndpoint>();
        var section = configuration.GetSection(SectionName).GetSection(serviceName).GetSection(endpointName);
        foreach (var child in section.GetChildren())
        {
            if (!int.TryParse(child.Key, NumberStyles.None, CultureInfo.InvariantCulture, out var index)
                || string.IsNullOrWhiteSpace(child.Value)
                || !Uri.TryCreate(child.Value, UriKind.Absolute, out var address))
            {
                continue;
            }

            result.Add(new ServiceEndpoint(serviceName, endpointName, index, address));
        }

        result.Sort((a, b) => a.Index.CompareTo(b.Index));
        return result;
    }

    private static Uri Rewrite(Uri logicalUri, Uri address)
    {
        var builder = new UriBuilder(logicalUri)
        {
            Scheme = address.Scheme,
            Host = address.Host,
            Port = address.Port,
        };

        // An endpoint registered with a base path (rare) prefixes the request path.
        var basePath = address.AbsolutePath.TrimEnd('/');
        if (basePath.Length > 0)
        {
            builder.Path = basePath + logicalUri.AbsolutePath;
        }

        return builder.Uri;
    }

    private static bool LooksLikeServiceName(string host) =>
        !host.Contains('.', StringComparison.Ordinal)
        && !host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
        && !IPAddress.TryParse(host, out _)
        && !host.StartsWith('[');

    /// <summary>Mutable cell for Interlocked increments inside a dictionary value.</summary>
    private sealed class StrongBox
    {
        public int Value;
    }
}
