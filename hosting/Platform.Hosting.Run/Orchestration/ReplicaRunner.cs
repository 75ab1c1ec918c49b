using System.Diagnostics;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Platform.Hosting.ApplicationModel;
using Platform.Hosting.Processes;

namespace Platform.Hosting.Orchestration;

/// <summary>One process of a resource: launches it, watches its exit and polls its health.</summary>
internal sealed class ReplicaRunner(ResourceRunner owner, int index)
{
    private readonly Lock _gate = new();
    private Process? _process;
    private CancellationTokenSource? _lifetime;
    private Task? _monitor;
    private bool _stopping;
    private bool _everHealthy;

    public int Index { get; } = index;

    public string InstanceId => RunEnvironment.InstanceId(owner.Resource, Index);

    public string State { get; private set; } = KnownResourceStates.NotStarted;

    public HealthStatus? Health { get; private set; }

    public int? Pid { get; private set; }

    public int? ExitCode { get; private set; }

    public DateTimeOffset? StartedAt { get; private set; }

    public DateTimeOffset? StoppedAt { get; private set; }

    public int Restarts { get; private set; }

    public IReadOnlyList<HealthReportSnapshot> HealthReports { get; private set; } = [];

    public IReadOnlyDictionary<string, string> Environment { get; private set; } = new Dictionary<string, string>();

    public IReadOnlySet<string> SecretNames { get; private set; } = new HashSet<string>();

    public void SetState(string state, bool publish = true)
    {
        State = state;
        if (publish)
        {
            owner.Publish();
        }
    }

    /// <summary>Launches the process and starts watching it; returns once it is running.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_process is not null && !_process.HasExited)
            {
                return;
            }

            _stopping = false;
            _everHealthy = false;
        }

        if (StartedAt is not null)
        {
            Restarts++;
        }

        ExitCode = null;
        Health = null;
        HealthReports = [];
        SetState(KnownResourceStates.Starting);
        ProcessLaunch launch;
        try
        {
            launch = await owner.BuildLaunchAsync(this, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            owner.Fail(this, ex.Message);
            return;
        }

        Process process;
        try
        {
            process = await owner.Orchestrator.Spawner.StartAsync(launch).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            owner.Fail(this, $"Could not start '{launch.Command}': {ex.Message}");
            return;
        }

        var lifetime = new CancellationTokenSource();
        lock (_gate)
        {
            _process = process;
            _lifetime = lifetime;
        }

        Pid = process.Id;
        StartedAt = owner.Orchestrator.TimeProvider.GetUtcNow();
        StoppedAt = null;
        process.OutputDataReceived += (_, e) => OnOutput(e.Data, isError: false);
        process.ErrorDataReceived += (_, e) => OnOutput(e.Data, isError: true);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        owner.Logger.LogInformation("Started {Instance} (pid {Pid}): {Command} {Args}", InstanceId, process.Id,
            launch.Command, string.Join(' ', launch.Args.Select(a => owner.MaskSecrets(a))));
        SetState(KnownResourceStates.Running);
        _monitor = Task.WhenAll(WatchExitAsync(process, lifetime), PollHealthAsync(lifetime.Token));
    }

    /// <summary>A resource without a process: running at once, health from its checks.</summary>
    public Task StartVirtualAsync(CancellationToken cancellationToken)
    {
        var lifetime = new CancellationTokenSource();
        lock (_gate)
        {
            _stopping = false;
            _lifetime = lifetime;
        }

        StartedAt = owner.Orchestrator.TimeProvider.GetUtcNow();
        SetState(KnownResourceStates.Running);
        _monitor = owner.HasHealthChecks ? PollHealthAsync(lifetime.Token) : Task.CompletedTask;
        return Task.CompletedTask;
    }

    internal void RecordEnvironment(IReadOnlyDictionary<string, string> env, IReadOnlySet<string> secrets)
    {
        Environment = env;
        SecretNames = secrets;
    }

    private void OnOutput(string? line, bool isError)
    {
        if (line is null)
        {
            return;
        }

        owner.Orchestrator.Logs.Write(owner.Resource.Name, InstanceId, line, isError);
        if (owner.Orchestrator.Options.EchoResourceLogs)
        {
            Console.WriteLine($"[{InstanceId}] {line}");
        }
    }

    private async Task WatchExitAsync(Process process, CancellationTokenSource lifetime)
    {
        await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
        // Let the output readers drain the last lines before they are quoted.
        await Task.Delay(50, CancellationToken.None).ConfigureAwait(false);
        await lifetime.CancelAsync().ConfigureAwait(false);
        bool stopping;
        lock (_gate)
        {
            stopping = _stopping;
        }

        ExitCode = process.ExitCode;
        Pid = null;
        StoppedAt = owner.Orchestrator.TimeProvider.GetUtcNow();
        Health = stopping ? null : HealthStatus.Unhealthy;
        if (stopping)
        {
            SetState(KnownResourceStates.Finished);
            return;
        }

        var lastLines = owner.Orchestrator.Logs.GetLines(owner.Resource.Name, 15)
            .Where(l => l.InstanceId == InstanceId).Select(l => l.Text);
        var state = _everHealthy ? KnownResourceStates.Exited : KnownResourceStates.FailedToStart;
        owner.Message = $"{InstanceId} exited with code {process.ExitCode}";
        owner.Logger.LogError("{Instance} exited unexpectedly with code {ExitCode} ({State}). Last output:{NewLine}{Lines}",
            InstanceId, process.ExitCode, state, System.Environment.NewLine, string.Join(System.Environment.NewLine, lastLines));
        SetState(state);
    }

    private async Task PollHealthAsync(CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromMilliseconds(25);
        var options = owner.Orchestrator.Options;
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var reports = await owner.CheckHealthAsync(Index, cancellationToken).ConfigureAwait(false);
                if (cancellationToken.IsCancellationRequested)
                {
                    break;
                }

                var status = reports.Count == 0 ? HealthStatus.Healthy : reports.Min(r => r.Status);
                if (status == HealthStatus.Healthy && !_everHealthy)
                {
                    // First healthy: let the server finish its set-up (e.g. create databases) before dependants start.
                    try
                    {
                        await owner.OnFirstHealthyAsync(cancellationToken).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        reports = [.. reports, new HealthReportSnapshot("setup", HealthStatus.Unhealthy, ex.Message, owner.Orchestrator.TimeProvider.GetUtcNow())];
                        status = HealthStatus.Unhealthy;
                    }
                }

                var changed = status != Health || !reports.Select(r => (r.Name, r.Status, r.Description)).SequenceEqual(HealthReports.Select(r => (r.Name, r.Status, r.Description)));
                HealthReports = reports;
                Health = status;
                if (status == HealthStatus.Healthy && !_everHealthy)
                {
                    _everHealthy = true;
                    if (StartedAt is { } started)
                    {
                        owner.Logger.LogInformation("{Instance} healthy {Elapsed:F2} s after launch", InstanceId,
                            (owner.Orchestrator.TimeProvider.GetUtcNow() - started).TotalSeconds);
                    }
                }

                if (changed)
                {
                    owner.Publish();
                }

                if (status == HealthStatus.Healthy)
                {
                    delay = options.HealthyPollInterval;
                }
                else
                {
                    delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 1.5, options.UnhealthyPollInterval.TotalMilliseconds));
                }

                await Task.Delay(delay, owner.Orchestrator.TimeProvider, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Asks the process to stop, then kills its process group after the timeout.</summary>
    public async Task StopAsync(int stopSignal)
    {
        Process? process;
        lock (_gate)
        {
            _stopping = true;
            process = _process;
        }

        if (process is null && _lifetime is { } virtualLifetime)
        {
            await virtualLifetime.CancelAsync().ConfigureAwait(false);
            if (_monitor is not null)
            {
                await _monitor.ConfigureAwait(false);
            }

            Health = null;
            SetState(KnownResourceStates.Finished);
            return;
        }

        if (process is null || process.HasExited)
        {
            if (State is KnownResourceStates.NotStarted or KnownResourceStates.Waiting or KnownResourceStates.Starting)
            {
                SetState(KnownResourceStates.Finished);
            }

            return;
        }

        SetState(KnownResourceStates.Stopping);
        ProcessSpawner.SignalGroup(process.Id, stopSignal);
        using var timeout = new CancellationTokenSource(owner.Orchestrator.Options.StopTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            owner.Logger.LogWarning("{Instance} did not stop within {Timeout}; killing it", InstanceId, owner.Orchestrator.Options.StopTimeout);
            ProcessSpawner.SignalGroup(process.Id, Signals.SigKill);
            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
        }

        // Children of the server (Postgres backends) share its process group.
        ProcessSpawner.SignalGroup(process.Id, Signals.SigKill);
        if (_monitor is not null)
        {
            await _monitor.ConfigureAwait(false);
        }
    }
}
