using System.Diagnostics;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Platform.Hosting.ApplicationModel;
using Platform.Hosting.Processes;

namespace Platform.Hosting.Orchestration;

/// <summary>
/// Run mode: starts every resource of the model as a native process (dependencies first, through
/// <c>WaitFor</c>), keeps their state and health current, and stops them in reverse dependency order.
/// </summary>
public sealed class DistributedApplicationOrchestrator : IAsyncDisposable
{
    private readonly List<ResourceRunner> _runners;
    private readonly HttpClient _probeClient = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(1) })
    {
        Timeout = TimeSpan.FromSeconds(3),
    };

    private readonly ILogger _logger;
    private readonly ILoggerFactory _loggerFactory;
    private Task? _startTask;
    private CancellationTokenSource _startCancellation = new();
    private int _stopped;

    /// <summary>Creates the orchestrator for a model.</summary>
    public DistributedApplicationOrchestrator(
        IResourceCollection resources,
        DistributedApplicationExecutionContext executionContext,
        IOptions<OrchestratorOptions> options,
        ResourceNotificationService notifications,
        ResourceLoggerService logs,
        ILoggerFactory loggerFactory,
        TimeProvider timeProvider)
    {
        ExecutionContext = executionContext;
        Options = options.Value;
        Notifications = notifications;
        Logs = logs;
        TimeProvider = timeProvider;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger("Platform.Hosting.Orchestrator");
        TempDirectory = Path.Combine(Path.GetTempPath(), $"platform-{Environment.ProcessId}-{Guid.NewGuid():N}"[..40]);
        _runners = resources.Select(r => new ResourceRunner(this, r, loggerFactory.CreateLogger($"Platform.Resources.{r.Name}"))).ToList();
        foreach (var runner in _runners)
        {
            runner.Publish();
        }
    }

    internal DistributedApplicationExecutionContext ExecutionContext { get; }

    internal OrchestratorOptions Options { get; }

    internal ResourceNotificationService Notifications { get; }

    internal ResourceLoggerService Logs { get; }

    internal TimeProvider TimeProvider { get; }

    internal ProcessSpawner Spawner { get; } = new();

    internal string TempDirectory { get; }

    internal IReadOnlyList<string> SecretValues { get; private set; } = [];

    /// <summary>Allocates ports and starts every resource; returns once all are launched or waiting.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        PortAllocator.AllocateAll(_runners.Select(r => r.Resource), Options.RandomizePorts);
        Directory.CreateDirectory(TempDirectory);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(TempDirectory, (UnixFileMode)Convert.ToInt32("755", 8));
        }
        SecretValues = _runners.Select(r => r.Resource).OfType<ParameterResource>().Where(p => p.Secret)
            .Select(p => p.Value).Where(v => v.Length >= 4).ToList();
        _startCancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var token = _startCancellation.Token;
        _startTask = Task.WhenAll(_runners.Select(r => Task.Run(() => r.StartAsync(token), CancellationToken.None)));
        return Task.CompletedTask;
    }

    /// <summary>Waits until every resource with a process or health check is ready; fails fast when one fails.</summary>
    public async Task WaitForAllHealthyAsync(CancellationToken cancellationToken)
    {
        await Task.WhenAll(_runners.Where(r => r.Resource is not ParameterResource)
            .Select(r => Notifications.WaitForResourceHealthyAsync(r.Resource.Name, cancellationToken))).ConfigureAwait(false);
    }

    /// <summary>Stops every resource: dependants before their dependencies, each wave in parallel.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1)
        {
            return;
        }

        var sw = Stopwatch.StartNew();
        await _startCancellation.CancelAsync().ConfigureAwait(false);
        if (_startTask is not null)
        {
            try
            {
                await _startTask.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or DistributedApplicationException)
            {
            }
        }

        var remaining = new HashSet<ResourceRunner>(_runners);
        while (remaining.Count > 0)
        {
            var wave = remaining.Where(r => !remaining.Any(o => o != r && DependsOn(o, r))).ToList();
            if (wave.Count == 0)
            {
                // A reference cycle (allowed without waits): stop the rest together.
                wave = [.. remaining];
            }

            await Task.WhenAll(wave.Select(r => r.StopAsync())).ConfigureAwait(false);
            remaining.ExceptWith(wave);
        }

        Spawner.Dispose();
        try
        {
            Directory.Delete(TempDirectory, recursive: true);
        }
        catch (IOException ex)
        {
            _logger.LogWarning(ex, "Could not delete {Directory}", TempDirectory);
        }
        catch (UnauthorizedAccessException ex)
        {
            _logger.LogWarning(ex, "Could not delete {Directory}", TempDirectory);
        }

        _logger.LogInformation("Stopped all resources in {Elapsed:F2} s", sw.Elapsed.TotalSeconds);
    }

    /// <summary>Stops one resource (all replicas, or one by instance id).</summary>
    public Task StopResourceAsync(string name, string? instanceId = null)
    {
        var runner = Find(name);
        return Task.WhenAll(Select(runner, instanceId).Select(r => r.StopAsync(runner.StopSignal)));
    }

    /// <summary>Starts a stopped resource (all replicas, or one by instance id) with the same ports.</summary>
    public Task StartResourceAsync(string name, string? instanceId = null, CancellationToken cancellationToken = default)
    {
        var runner = Find(name);
        return Task.WhenAll(Select(runner, instanceId).Select(r => runner.Kind == RunnerKind.Virtual
            ? r.StartVirtualAsync(cancellationToken)
            : r.StartAsync(cancellationToken)));
    }

    /// <summary>Stops and starts a resource or one replica.</summary>
    public async Task RestartResourceAsync(string name, string? instanceId = null, CancellationToken cancellationToken = default)
    {
        await StopResourceAsync(name, instanceId).ConfigureAwait(false);
        await StartResourceAsync(name, instanceId, cancellationToken).ConfigureAwait(false);
    }

    private static IEnumerable<ReplicaRunner> Select(ResourceRunner runner, string? instanceId) =>
        instanceId is null
            ? runner.Replicas
            : runner.Replicas.Where(r => r.InstanceId == instanceId) is var matched && matched.Any()
                ? matched
                : throw new DistributedApplicationException($"Resource '{runner.Resource.Name}' has no replica '{instanceId}'.");

    private ResourceRunner Find(string name) =>
        _runners.FirstOrDefault(r => string.Equals(r.Resource.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new DistributedApplicationException($"Unknown resource '{name}'.");

    private static bool DependsOn(ResourceRunner dependant, ResourceRunner dependency) =>
        dependant.Resource.OfAnnotation<ResourceRelationshipAnnotation>().Any(a => a.Resource == dependency.Resource) ||
        dependant.Waits.Any(w => w.Resource == dependency.Resource);

    internal async Task<HealthReportSnapshot> ProbeHttpAsync(string url, int expectedStatus, CancellationToken cancellationToken)
    {
        var now = TimeProvider.GetUtcNow();
        try
        {
            using var response = await _probeClient.GetAsync(url, cancellationToken).ConfigureAwait(false);
            var body = (int)response.StatusCode == expectedStatus ? null : await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            return new HealthReportSnapshot($"http {new Uri(url).AbsolutePath}",
                (int)response.StatusCode == expectedStatus ? HealthStatus.Healthy : HealthStatus.Unhealthy,
                $"GET {url} answered {(int)response.StatusCode}{(body is { Length: > 0 } ? $": {Truncate(body, 500)}" : string.Empty)}", now);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return new HealthReportSnapshot($"http {new Uri(url).AbsolutePath}", HealthStatus.Unhealthy, $"GET {url}: {ex.Message}", now);
        }
    }

    private static string Truncate(string s, int max) => s.Length <= max ? s : s[..max] + "…";

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _probeClient.Dispose();
        _startCancellation.Dispose();
    }
}
