namespace Platform.Hosting.Orchestration;

/// <summary>Run-mode settings.</summary>
public sealed class OrchestratorOptions
{
    /// <summary>Directory for persistent state (data volumes, generated parameters): <c>.platform/</c>.</summary>
    public string StateDirectory { get; set; } = ".platform";

    /// <summary>Environment name given to projects (<c>ASPNETCORE_ENVIRONMENT</c>).</summary>
    public string EnvironmentName { get; set; } = "Development";

    /// <summary>OTLP endpoint given to projects; null leaves telemetry export off.</summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary>Headers for OTLP export (<c>x-otlp-api-key=...</c>).</summary>
    public string? OtlpHeaders { get; set; }

    /// <summary>Ignore fixed ports and allocate free ones (tests).</summary>
    public bool RandomizePorts { get; set; }

    /// <summary>Ignore data volumes: all data in a throw-away directory (tests).</summary>
    public bool DisablePersistence { get; set; }

    /// <summary>Echo resources' console output to the AppHost's console.</summary>
    public bool EchoResourceLogs { get; set; }

    /// <summary>How long a process gets to stop before it is killed.</summary>
    public TimeSpan StopTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Health poll interval once healthy (Aspire uses 30 s; shorter makes outages visible sooner).</summary>
    public TimeSpan HealthyPollInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Largest health poll interval while not healthy (polling starts faster and backs off to this).</summary>
    public TimeSpan UnhealthyPollInterval { get; set; } = TimeSpan.FromMilliseconds(250);
}
