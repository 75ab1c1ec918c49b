namespace Platform.ServiceDefaults.Telemetry;

/// <summary>
/// Extra ActivitySource and Meter names a service wants exported, beyond the framework ones and the
/// "Platform.*" convention. Configure with <c>builder.Services.Configure&lt;PlatformTelemetryOptions&gt;(...)</c>.
/// </summary>
public sealed class PlatformTelemetryOptions
{
    /// <summary>Convention prefix: any ActivitySource or Meter whose name starts with this is exported without registration.</summary>
    public const string ConventionPrefix = "Platform.";

    /// <summary>Additional ActivitySource names (wildcards such as "Vendor.*" are allowed).</summary>
    public IList<string> ActivitySources { get; } = [];

    /// <summary>Additional Meter names (wildcards allowed).</summary>
    public IList<string> Meters { get; } = [];

    /// <summary>Request paths that are never traced (probes would otherwise flood the trace store).</summary>
    public IList<string> UntracedPaths { get; } = ["/health", "/alive", "/metrics"];
}
