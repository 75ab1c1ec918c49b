using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Platform.Hosting.ApplicationModel;
using Platform.Hosting.Processes;

namespace Platform.Hosting.Orchestration;

/// <summary>Runs one resource of the model: its waits, its replicas, its health and its snapshot.</summary>
internal sealed class ResourceRunner
{
    private readonly Lock _publishGate = new();
    private readonly Lock _readyGate = new();
    private Task? _readyTask;
    private string? _dataDirectory;

    public ResourceRunner(DistributedApplicationOrchestrator orchestrator, IResource resource, ILogger logger)
    {
        Orchestrator = orchestrator;
        Resource = resource;
        Logger = logger;
        Kind = resource switch
        {
            ProjectResource => RunnerKind.Project,
            ExecutableResource => RunnerKind.Executable,
            ContainerResource c when c.TryGetLastAnnotation<NativeProcessAnnotation>(out _) => RunnerKind.Native,
            ContainerResource => RunnerKind.UnsupportedContainer,
            _ => RunnerKind.Virtual,
        };
        var replicas = Kind is RunnerKind.Virtual or RunnerKind.UnsupportedContainer ? 1 : resource.GetReplicaCount();
        Replicas = Enumerable.Range(0, replicas).Select(i => new ReplicaRunner(this, i)).ToArray();
        HasHealthChecks = resource.OfAnnotation<ResourceHealthCheckAnnotation>().Any() ||
            (Kind != RunnerKind.Native && resource.OfAnnotation<HttpHealthCheckAnnotation>().Any());
    }

    public DistributedApplicationOrchestrator Orchestrator { get; }

    public IResource Resource { get; }

    public ILogger Logger { get; }

    public RunnerKind Kind { get; }

    public ReplicaRunner[] Replicas { get; }

    public bool HasHealthChecks { get; }

    public string? Message { get; set; }

    /// <summary>Resources this one must wait for.</summary>
    public IEnumerable<WaitAnnotation> Waits =>
        Resource.OfAnnotation<WaitAnnotation>().Concat(
            Resource is IResourceWithParent p ? [new WaitAnnotation(p.Parent, WaitType.WaitUntilHealthy)] : []);

    /// <summary>Waits for dependencies, then starts every replica.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var waits = Waits.ToList();
        if (waits.Count > 0)
        {
            foreach (var r in Replicas)
            {
                r.SetState(KnownResourceStates.Waiting, publish: false);
            }

            Publish();
            try
            {
                await Task.WhenAll(waits.Select(w => WaitForAsync(w, cancellationToken))).ConfigureAwait(false);
            }
            catch (DistributedApplicationException ex)
            {
                foreach (var r in Replicas)
                {
                    Fail(r, $"Dependency failed: {ex.Message}");
                }

                return;
            }
        }

        switch (Kind)
        {
            case RunnerKind.Virtual:
                await StartVirtualAsync(cancellationToken).ConfigureAwait(false);
                break;
            case RunnerKind.UnsupportedContainer:
                Fail(Replicas[0], "Containers are not supported here (no container engine): add a NativeProcessAnnotation or run it as an executable.");
                break;
            default:
                await Task.WhenAll(Replicas.Select(r => r.StartAsync(cancellationToken))).ConfigureAwait(false);
                break;
        }
    }

    private async Task WaitForAsync(WaitAnnotation wait, CancellationToken cancellationToken)
    {
        var notifications = Orchestrator.Notifications;
        if (wait.WaitType == WaitType.WaitUntilCompleted)
        {
            var done = await notifications.WaitForResourceAsync(wait.Resource.Name,
                s => s.State is KnownResourceStates.Finished or KnownResourceStates.Exited, cancellationToken).ConfigureAwait(false);
            if (done.ExitCode is not (null or 0))
            {
                throw new DistributedApplicationException($"'{wait.Resource.Name}' exited with code {done.ExitCode}.");
            }

            return;
        }

        try
        {
            await notifications.WaitForResourceHealthyAsync(wait.Resource.Name, cancellationToken).ConfigureAwait(false);
        }
        catch (DistributedApplicationException)
        {
            var state = notifications.TryGet(wait.Resource.Name)?.State;
            throw new DistributedApplicationException($"'{wait.Resource.Name}' is {state} and will not become healthy.");
        }
    }

    private Task StartVirtualAsync(CancellationToken cancellationToken)
    {
        // Parameters, connection strings and databases have no process: they are "running" once their
        // parent is, and a database is healthy once its health check (a query) succeeds.
        var replica = Replicas[0];
        replica.SetState(KnownResourceStates.Running, publish: false);
        return replica.StartVirtualAsync(cancellationToken);
    }

    /// <summary>Builds the command line and environment of a replica.</summary>
    public async Task<ProcessLaunch> BuildLaunchAsync(ReplicaRunner replica, CancellationToken cancellationToken)
    {
        var (env, secrets) = await RunEnvironment.ResolveAsync(Resource, replica.Index, Orchestrator.ExecutionContext, Orchestrator.Options, cancellationToken)
            .ConfigureAwait(false);
        var args = await RunEnvironment.ResolveArgsAsync(Resource, cancellationToken).ConfigureAwait(false);
        switch (Resource)
        {
            case ProjectResource project:
            {
                replica.RecordEnvironment(env, secrets);
                var metadata = project.TryGetLastAnnotation<ProjectMetadataAnnotation>(out var m)
                    ? m.Metadata
                    : throw new DistributedApplicationException($"Project '{project.Name}' has no project metadata.");
                var target = ProjectOutput.FindTargetPath(metadata);
                return new ProcessLaunch("dotnet", [target, .. args], Path.GetDirectoryName(metadata.ProjectPath)!, env);
            }

            case ExecutableResource executable:
                replica.RecordEnvironment(env, secrets);
                if (!CommandExists(executable.Command))
                {
                    throw new DistributedApplicationException($"'{executable.Command}' was not found (checked the path and PATH).");
                }

                return new ProcessLaunch(executable.Command, args, executable.WorkingDirectory, env);

            case ContainerResource container when container.TryGetLastAnnotation<NativeProcessAnnotation>(out var native):
            {
                var context = new NativeProcessContext(container, EnsureDataDirectory(), IsPersistent,
                    container.GetEndpoints().ToDictionary(e => e.Name, e => e.GetAllocated(replica.Index)!), Logger);
                var spec = await native.Launcher.PrepareAsync(context, cancellationToken).ConfigureAwait(false);
                _stopSignal = spec.StopSignal;
                var nativeEnv = new Dictionary<string, string>(spec.Environment ?? new Dictionary<string, string>());
                replica.RecordEnvironment(nativeEnv, nativeEnv.Keys.Where(k => k.Contains("PASSWORD", StringComparison.Ordinal) || k.Contains("SECRET", StringComparison.Ordinal)).ToHashSet());
                return new ProcessLaunch(spec.Command, spec.Args, spec.WorkingDirectory ?? context.DataDirectory, nativeEnv, spec.RunAsUser);
            }

            default:
                throw new DistributedApplicationException($"Resource '{Resource.Name}' cannot be started.");
        }
    }

    private static bool CommandExists(string command) =>
        command.Contains('/', StringComparison.Ordinal)
            ? File.Exists(command)
            : (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries)
                .Any(dir => File.Exists(Path.Combine(dir, command)));

    private bool IsPersistent => !Orchestrator.Options.DisablePersistence && Resource.OfAnnotation<DataVolumeAnnotation>().Any();

    private string EnsureDataDirectory()
    {
        if (_dataDirectory is not null)
        {
            return _dataDirectory;
        }

        var dir = IsPersistent
            ? Path.GetFullPath(Path.Combine(Orchestrator.Options.StateDirectory, Resource.Name))
            : Path.Combine(Orchestrator.TempDirectory, Resource.Name);
        Directory.CreateDirectory(dir);
        if (!OperatingSystem.IsWindows())
        {
            // Servers may run as their own user (Postgres): they must be able to reach their directory,
            // so the directories Platform owns on the way get search permission for others.
            var parent = Path.GetDirectoryName(dir)!;
            File.SetUnixFileMode(parent, File.GetUnixFileMode(parent) | UnixFileMode.OtherExecute | UnixFileMode.GroupExecute);
            File.SetUnixFileMode(dir, (UnixFileMode)Convert.ToInt32("755", 8));
        }

        return _dataDirectory = dir;
    }

    /// <summary>Runs the resource's health checks for one replica.</summary>
    public async Task<IReadOnlyList<HealthReportSnapshot>> CheckHealthAsync(int replica, CancellationToken cancellationToken)
    {
        var now = Orchestrator.TimeProvider.GetUtcNow();
        var reports = new List<HealthReportSnapshot>();
        foreach (var check in Resource.OfAnnotation<ResourceHealthCheckAnnotation>())
        {
            var result = await check.Check(new ResourceHealthCheckContext(Resource, replica), cancellationToken).ConfigureAwait(false);
            reports.Add(new HealthReportSnapshot(check.Name, result.Status, result.Description, now));
        }

        if (Kind != RunnerKind.Native)
        {
            foreach (var probe in Resource.OfAnnotation<HttpHealthCheckAnnotation>())
            {
                var endpoint = Resource.GetEndpoints().FirstOrDefault(e => e.Name == probe.EndpointName)?.GetAllocated(replica);
                if (endpoint is null)
                {
                    reports.Add(new HealthReportSnapshot($"http {probe.Path}", HealthStatus.Unhealthy, $"No endpoint '{probe.EndpointName}'", now));
                    continue;
                }

                reports.Add(await Orchestrator.ProbeHttpAsync(endpoint.Url + probe.Path, probe.ExpectedStatusCode, cancellationToken).ConfigureAwait(false));
            }
        }

        return reports;
    }

    /// <summary>The launcher's one-time set-up after the server is first healthy (shared by replicas).</summary>
    public Task OnFirstHealthyAsync(CancellationToken cancellationToken)
    {
        if (!Resource.TryGetLastAnnotation<NativeProcessAnnotation>(out var native))
        {
            return Task.CompletedTask;
        }

        lock (_readyGate)
        {
            if (_readyTask is null || _readyTask.IsFaulted || _readyTask.IsCanceled)
            {
                var context = new NativeProcessContext(Resource, EnsureDataDirectory(), IsPersistent,
                    Resource.GetEndpoints().ToDictionary(e => e.Name, e => e.GetAllocated(0)!), Logger);
                _readyTask = native.Launcher.OnReadyAsync(context, cancellationToken);
            }

            return _readyTask;
        }
    }

    /// <summary>Stops every replica.</summary>
    public Task StopAsync()
    {
        return Task.WhenAll(Replicas.Select(r => r.StopAsync(_stopSignal)));
    }

    private int _stopSignal = Signals.SigTerm;

    /// <summary>The signal that asks this resource's processes to stop.</summary>
    public int StopSignal => _stopSignal;

    /// <summary>Marks a replica as failed to start.</summary>
    public void Fail(ReplicaRunner replica, string message)
    {
        Message = message;
        Logger.LogError("{Instance} failed to start: {Message}", replica.InstanceId, message);
        replica.SetState(KnownResourceStates.FailedToStart);
    }

    /// <summary>Replaces secret values in text shown to users.</summary>
    public string MaskSecrets(string text)
    {
        foreach (var p in Orchestrator.SecretValues)
        {
            text = text.Replace(p, "****", StringComparison.Ordinal);
        }

        return text;
    }

    /// <summary>Publishes the resource's current snapshot.</summary>
    public void Publish()
    {
        lock (_publishGate)
        {
            Orchestrator.Notifications.Publish(Snapshot());
        }
    }

    public ResourceSnapshot Snapshot()
    {
        var replicas = Replicas.Select(r => new ReplicaSnapshot(
            r.InstanceId, r.Index, r.State, r.Health, r.Pid, r.ExitCode, r.StartedAt, r.StoppedAt, r.Restarts,
            Resource.GetEndpoints().Select(e => e.GetAllocated(r.Index) is { } a ? new ResourceEndpointSnapshot(e.Name, a.Url, e.IsExternal) : null)
                .OfType<ResourceEndpointSnapshot>().ToList(),
            r.HealthReports)).ToList();
        var env = Replicas[0].Environment
            .OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => Replicas[0].SecretNames.Contains(kv.Key)
                ? new EnvironmentVariableSnapshot(kv.Key, "****", true)
                : new EnvironmentVariableSnapshot(kv.Key, MaskSecrets(kv.Value), false))
            .ToList();
        return new ResourceSnapshot(
            Resource.Name,
            Resource.GetResourceType(),
            AggregateState(replicas),
            AggregateHealth(replicas),
            replicas.SelectMany(r => r.Endpoints).ToList(),
            replicas,
            replicas.SelectMany(r => r.HealthReports).ToList(),
            env,
            Resource.OfAnnotation<ResourceRelationshipAnnotation>().Select(a => a.Resource.Name).Distinct().ToList(),
            HasHealthChecks,
            Message);
    }

    private static string AggregateState(IReadOnlyList<ReplicaSnapshot> replicas)
    {
        string[] precedence =
        [
            KnownResourceStates.FailedToStart, KnownResourceStates.RuntimeUnhealthy, KnownResourceStates.Exited,
            KnownResourceStates.Stopping, KnownResourceStates.Starting, KnownResourceStates.Waiting, KnownResourceStates.NotStarted,
        ];
        if (replicas.All(r => r.State == replicas[0].State))
        {
            return replicas[0].State;
        }

        return precedence.FirstOrDefault(p => replicas.Any(r => r.State == p)) ?? replicas[0].State;
    }

    private HealthStatus? AggregateHealth(IReadOnlyList<ReplicaSnapshot> replicas)
    {
        if (!HasHealthChecks)
        {
            return replicas.All(r => r.State == KnownResourceStates.Running) ? HealthStatus.Healthy : null;
        }

        if (replicas.Any(r => r.Health is null))
        {
            return replicas.Any(r => r.Health == HealthStatus.Unhealthy) ? HealthStatus.Unhealthy : null;
        }

        return replicas.Min(r => r.Health);
    }
}

/// <summary>How a resource runs.</summary>
internal enum RunnerKind
{
    Project,
    Executable,
    Native,
    Virtual,
    UnsupportedContainer,
}
