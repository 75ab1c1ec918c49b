namespace Platform.ServiceDefaults.ServiceDiscovery;

/// <summary>
/// Rewrites logical service URIs to a concrete replica per attempt. It sits inside the resilience handler, so a retry
/// resolves again and lands on the next replica; the logical URI is kept in the request options for that purpose.
/// </summary>
internal sealed class ServiceDiscoveryHandler(IServiceEndpointResolver resolver, bool enabled) : DelegatingHandler
{
    internal static readonly HttpRequestOptionsKey<Uri> LogicalUriKey = new("Platform.ServiceDiscovery.LogicalUri");

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (!enabled)
        {
            return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }

        if (!request.Options.TryGetValue(LogicalUriKey, out var logicalUri))
        {
            logicalUri = request.RequestUri;
            if (logicalUri is not null)
            {
                request.Options.Set(LogicalUriKey, logicalUri);
            }
        }

        if (logicalUri is not null)
        {
            request.RequestUri = await resolver.ResolveAsync(logicalUri, cancellationToken).ConfigureAwait(false);
        }

        return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
    }
}
