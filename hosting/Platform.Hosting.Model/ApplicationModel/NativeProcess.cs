using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;

namespace Platform.Hosting.ApplicationModel;

/// <summary>
/// How run mode starts a server that Aspire would run as a container. There is no container
/// engine on the machines Platform targets, so each infrastructure resource brings its own
/// native launcher (Postgres via initdb/postgres, Redis via redis-server...).
/// </summary>
public sealed record NativeProcessAnnotation(INativeProcessLauncher Launcher) : IResourceAnnotation;

/// <summary>Starts, checks and prepares one kind of native server.</summary>
public interface INativeProcessLauncher
{
    /// <summary>The shell command that installs what this server needs, shown when a binary is missing.</summary>
    string InstallHint { get; }

    /// <summary>Prepares the data directory (e.g. initdb) and returns the command line of the server.</summary>
    Task<NativeProcessSpec> PrepareAsync(NativeProcessContext context, CancellationToken cancellationToken);

    /// <summary>Runs once the server is first healthy (e.g. creates databases); idempotent.</summary>
    Task OnReadyAsync(NativeProcessContext context, CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>What a launcher gets: where its data lives and where it must listen.</summary>
/// <param name="Resource">The server resource.</param>
/// <param name="DataDirectory">Directory for the server's data (created, possibly empty).</param>
/// <param name="Persistent">True when the data must survive restarts (<c>WithDataVolume</c>).</param>
/// <param name="Endpoints">Allocated endpoints by endpoint name.</param>
/// <param name="Logger">Logger for the resource.</param>
public sealed record NativeProcessContext(
    IResource Resource,
    string DataDirectory,
    bool Persistent,
    IReadOnlyDictionary<string, AllocatedEndpoint> Endpoints,
    ILogger Logger);

/// <summary>The command line of a native server.</summary>
/// <param name="Command">Executable name or path; resolved on PATH.</param>
/// <param name="Args">Arguments.</param>
/// <param name="RunAsUser">Run as this user (via setpriv) when the AppHost runs as root, e.g. "postgres".</param>
/// <param name="Environment">Extra environment variables.</param>
/// <param name="WorkingDirectory">Working directory; the data directory when null.</param>
/// <param name="StopSignal">Signal that asks the server to stop (SIGTERM = 15, SIGINT = 2 for Postgres' fast shutdown).</param>
public sealed record NativeProcessSpec(
    string Command,
    IReadOnlyList<string> Args,
    string? RunAsUser = null,
    IReadOnlyDictionary<string, string>? Environment = null,
    string? WorkingDirectory = null,
    int StopSignal = 15);

/// <summary>A health check the orchestrator runs for a resource (besides HTTP probes).</summary>
public sealed record ResourceHealthCheckAnnotation(
    string Name,
    Func<ResourceHealthCheckContext, CancellationToken, Task<HealthCheckResult>> Check) : IResourceAnnotation;

/// <summary>Input of a <see cref="ResourceHealthCheckAnnotation"/>.</summary>
public sealed record ResourceHealthCheckContext(IResource Resource, int Replica);
