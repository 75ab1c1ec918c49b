using System.Reflection;

namespace Platform.Hosting;

/// <summary>How an AppHost is created (Aspire's <c>DistributedApplicationOptions</c>).</summary>
public sealed class DistributedApplicationOptions
{
    /// <summary>Command-line arguments (<c>--publisher</c>, <c>--output-path</c>, <c>--dashboard-port</c>, config overrides).</summary>
    public string[] Args { get; set; } = [];

    /// <summary>The AppHost assembly (the entry assembly unless a test says otherwise).</summary>
    public Assembly? AppHostAssembly { get; set; }

    /// <summary>Do not serve the dashboard (tests).</summary>
    public bool DisableDashboard { get; set; }

    /// <summary>Allocate free ports even where the model fixes one (tests).</summary>
    public bool RandomizePorts { get; set; }

    /// <summary>Keep all data in throw-away directories (tests).</summary>
    public bool DisablePersistence { get; set; }

    /// <summary>Directory for persistent state; <c>&lt;AppHost&gt;/../.platform</c> by default.</summary>
    public string? StateDirectory { get; set; }

    /// <summary>Whether <c>RunAsync</c> prints the banner (dashboard URL, time to healthy).</summary>
    public bool PrintBanner { get; set; } = true;
}
