namespace Platform.Hosting.Dashboard;

/// <summary>Dashboard settings (configuration section <c>Dashboard</c>, and <c>--dashboard-port</c>).</summary>
public sealed class DashboardOptions
{
    /// <summary>Port on 127.0.0.1; 0 picks a free one.</summary>
    public int Port { get; set; } = 18888;

    /// <summary>Address to bind; loopback unless deliberately changed.</summary>
    public string BindAddress { get; set; } = "127.0.0.1";

    /// <summary>
    /// Browser token for <c>/login?t=…</c> and <c>Authorization: Bearer</c>. Null: <c>PLATFORM_DASHBOARD_TOKEN</c>,
    /// else a new random token per run.
    /// </summary>
    public string? BrowserToken { get; set; }

    /// <summary>API key services must send in <c>x-otlp-api-key</c>; null: a new random key per run.</summary>
    public string? OtlpApiKey { get; set; }

    /// <summary>Save telemetry under <c>&lt;state&gt;/telemetry</c> and reload it at start.</summary>
    public bool PersistTelemetry { get; set; } = true;

    /// <summary>Directory for persisted telemetry; null: <c>&lt;state directory&gt;/telemetry</c>.</summary>
    public string? TelemetryDirectory { get; set; }

    /// <summary>How often persisted telemetry is saved (also saved at shutdown).</summary>
    public TimeSpan PersistInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Largest OTLP request body accepted, in bytes.</summary>
    public long MaxOtlpRequestBytes { get; set; } = 16 * 1024 * 1024;
}
