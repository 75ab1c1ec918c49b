using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Platform.Hosting.ApplicationModel;

/// <summary>Aspire's resource states, as the dashboard and tests see them.</summary>
public static class KnownResourceStates
{
    /// <summary>Not started yet.</summary>
    public const string NotStarted = "NotStarted";

    /// <summary>Waiting for dependencies (<c>WaitFor</c>).</summary>
    public const string Waiting = "Waiting";

    /// <summary>Being prepared or launched.</summary>
    public const string Starting = "Starting";

    /// <summary>Process running.</summary>
    public const string Running = "Running";

    /// <summary>A required runtime is missing.</summary>
    public const string RuntimeUnhealthy = "RuntimeUnhealthy";

    /// <summary>Could not start, or exited before it became healthy.</summary>
    public const string FailedToStart = "FailedToStart";

    /// <summary>Being stopped.</summary>
    public const string Stopping = "Stopping";

    /// <summary>Exited on its own after running.</summary>
    public const string Exited = "Exited";

    /// <summary>Stopped by the AppHost, or completed.</summary>
    public const string Finished = "Finished";

    /// <summary>States from which a resource does not recover by itself.</summary>
    public static bool IsTerminal(string state) => state is FailedToStart or Exited or Finished or RuntimeUnhealthy;
}

/// <summary>An endpoint as shown to users.</summary>
public sealed record ResourceEndpointSnapshot(string Name, string Url, bool IsExternal);

/// <summary>The result of one health check.</summary>
public sealed record HealthReportSnapshot(string Name, HealthStatus Status, string? Description, DateTimeOffset CheckedAt);

/// <summary>An environment variable; secret values are masked.</summary>
public sealed record EnvironmentVariableSnapshot(string Name, string Value, bool IsSecret);

/// <summary>One process of a resource.</summary>
public sealed record ReplicaSnapshot(
    string InstanceId,
    int Index,
    string State,
    HealthStatus? Health,
    int? Pid,
    int? ExitCode,
    DateTimeOffset? StartedAt,
    DateTimeOffset? StoppedAt,
    int Restarts,
    IReadOnlyList<ResourceEndpointSnapshot> Endpoints,
    IReadOnlyList<HealthReportSnapshot> HealthReports);

/// <summary>The state of a resource at one moment.</summary>
public sealed record ResourceSnapshot(
    string Name,
    string Type,
    string State,
    HealthStatus? Health,
    IReadOnlyList<ResourceEndpointSnapshot> Endpoints,
    IReadOnlyList<ReplicaSnapshot> Replicas,
    IReadOnlyList<HealthReportSnapshot> HealthReports,
    IReadOnlyList<EnvironmentVariableSnapshot> Environment,
    IReadOnlyList<string> References,
    bool HasHealthChecks,
    string? Message)
{
    /// <summary>Earliest start of a replica.</summary>
    public DateTimeOffset? StartedAt => Replicas.Select(r => r.StartedAt).Where(s => s is not null).Min();

    /// <summary>Process ids of the running replicas.</summary>
    public IReadOnlyList<int> Pids => Replicas.Where(r => r.Pid is not null).Select(r => r.Pid!.Value).ToList();

    /// <summary>Exit code of the first replica that exited, if any.</summary>
    public int? ExitCode => Replicas.Select(r => r.ExitCode).FirstOrDefault(c => c is not null);
}
