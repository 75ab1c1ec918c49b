namespace Platform.ServiceDefaults.ServiceDiscovery;

/// <summary>Per-client service discovery switch (named options, keyed by HttpClient name).</summary>
public sealed class ServiceDiscoveryOptions
{
    /// <summary>When false the client's URIs are sent as written, never resolved.</summary>
    public bool Enabled { get; set; } = true;
}
