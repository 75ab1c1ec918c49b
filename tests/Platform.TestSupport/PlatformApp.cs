using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Platform.Hosting;

namespace Platform.TestSupport;

/// <summary>
/// The whole platform for a test suite: the AppHost started through Aspire's <see cref="DistributedApplicationTestingBuilder"/>
/// (random ports, no dashboard) with throw-away data, plus the waits, per-replica access, resource commands and console
/// logs the suites share. Every wait fails with the state, health and last log lines of what it waited for.
/// </summary>
public sealed class PlatformApp : IAsyncDisposable
{
    /// <summary>How long a whole platform may take to come up on a loaded 2-core machine.</summary>
    public static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(4);

    private readonly ConcurrentDictionary<string, ConcurrentQueue<string>> _logs = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ResourceEvent> _instances = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly DirectoryInfo _data;
    private Task? _watching;

    private PlatformApp(DistributedApplication app, DirectoryInfo data)
    {
        App = app;
        _data = data;
    }

    /// <summary>The running application.</summary>
    public DistributedApplication App { get; }

    /// <summary>The application model (resources and their annotations).</summary>
    public DistributedApplicationModel Model => App.Services.GetRequiredService<DistributedApplicationModel>();

    /// <summary>Where this run's servers keep their data (deleted on dispose).</summary>
    public string DataDirectory => _data.FullName;

    /// <summary>
    /// Builds and starts the AppHost with <paramref name="args"/> (e.g. <c>--Parameters:admin-api-key=…</c>), lets
    /// <paramref name="configure"/> change the model first (e.g. replicas), and waits until every resource is healthy.
    /// </summary>
    public static Task<PlatformApp> StartAsync(IEnumerable<string>? args = null,
        Action<IDistributedApplicationTestingBuilder>? configure = null, CancellationToken cancellationToken = default) =>
        // The suite's arguments last, so they may override the defaults (e.g. --Platform:DurableData=true for crash tests).
        StartAsync((data, arguments) => DistributedApplicationTestingBuilder.CreateAsync<Projects.Platform_AppHost>([.. arguments, .. args ?? []], cancellationToken),
            configure, cancellationToken);

    private static async Task<PlatformApp> StartAsync(Func<DirectoryInfo, string[], Task<IDistributedApplicationTestingBuilder>> create,
        Action<IDistributedApplicationTestingBuilder>? configure, CancellationToken cancellationToken)
    {
        var data = Directory.CreateTempSubdirectory("platform-test-");
        // Postgres runs as its own user when the tests run as root: it must be able to reach its folder.
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(data.FullName, (UnixFileMode)0b111_101_101);
        }

        var builder = await create(data, [$"--Platform:DataDirectory={data.FullName}", "--Platform:DurableData=false"]);
        // As `dotnet run` of the AppHost does: a resource's health checks fail until its process listens, and the dashboard
        // (and the waits here) show health; the testing builder's logging would print each failure with a stack trace.
        builder.Services.AddLogging(logging => logging.AddFilter("Microsoft.Extensions.Diagnostics.HealthChecks.DefaultHealthCheckService", LogLevel.None));
        configure?.Invoke(builder);
        var app = await builder.BuildAsync(cancellationToken);
        var platform = new PlatformApp(app, data);
        platform._watching = platform.WatchAsync(platform._stopping.Token);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(StartTimeout);
        try
        {
            await app.StartAsync(timeout.Token);
            await platform.WaitForAllHealthyAsync(timeout.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or DistributedApplicationException)
        {
            var report = platform.Describe();
            await platform.DisposeAsync();
            throw new InvalidOperationException($"The platform did not come up: {ex.Message}\n{report}", ex);
        }

        return platform;
    }

    /// <summary>
    /// Builds and starts a model of the suite's own (no AppHost), e.g. only the servers a library test needs through
    /// Platform's native resources, with throw-away data, and waits until everything is healthy.
    /// </summary>
    public static Task<PlatformApp> StartModelAsync(Action<IDistributedApplicationTestingBuilder> compose, CancellationToken cancellationToken = default) =>
        StartAsync((data, arguments) => Task.FromResult(DistributedApplicationTestingBuilder.Create(arguments)), compose, cancellationToken);

    /// <summary>Waits until every resource is Running and Healthy, and every service replica answers its own <c>/health</c>.</summary>
    public async Task WaitForAllHealthyAsync(CancellationToken cancellationToken)
    {
        await App.ResourceNotifications.WaitForAllHealthyAsync(Model, cancellationToken);
        foreach (var project in Model.Resources.OfType<ProjectResource>())
        {
            for (var replica = 0; replica < Instances(project.Name).Count; replica++)
            {
                await WaitForReplicaHealthAsync(project.Name, replica, null, cancellationToken);
            }
        }
    }

    /// <summary>
    /// Waits until every replica of <paramref name="resource"/> is Running and Healthy, and (for a service) answers its own
    /// <c>/health</c>: Aspire checks a replicated resource through its proxy, which another replica can answer.
    /// </summary>
    public async Task WaitForHealthyAsync(string resource, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        await WaitForAsync(resource, "Running and Healthy", s => s.State?.Text == KnownResourceStates.Running && s.HealthStatus == HealthStatus.Healthy,
            timeout, cancellationToken);
        for (var replica = 0; replica < Instances(resource).Count; replica++)
        {
            await WaitForReplicaHealthAsync(resource, replica, timeout, cancellationToken);
        }
    }

    /// <summary>Waits until every replica of <paramref name="resource"/> satisfies <paramref name="condition"/>.</summary>
    public async Task WaitForAsync(string resource, string what, Func<CustomResourceSnapshot, bool> condition, TimeSpan? timeout = null,
        CancellationToken cancellationToken = default)
    {
        var expected = Replicas(resource);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout ?? TimeSpan.FromSeconds(90));
        try
        {
            await foreach (var update in App.ResourceNotifications.WatchAsync(cts.Token))
            {
                if (update.Resource.Name == resource && Instances(resource).Count(e => condition(e.Snapshot)) >= expected)
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"'{resource}' did not become {what} in time.\n{Describe(resource)}");
        }
    }

    /// <summary>Current snapshots of every instance the dashboard would list: no parameters, nothing hidden.</summary>
    public IReadOnlyList<ResourceEvent> AllInstances() =>
        [.. _instances.Values.Select(e => e.Resource.Name).Distinct().SelectMany(Instances)
            .Where(e => e.Resource is not ParameterResource && !e.Snapshot.IsHidden)];

    /// <summary>The environment one replica was started with (names and values as Aspire resolved them).</summary>
    public IReadOnlyDictionary<string, string?> Environment(string resource, int replica = 0) =>
        Instance(resource, replica).Snapshot.EnvironmentVariables.GroupBy(e => e.Name).ToDictionary(g => g.Key, g => g.Last().Value, StringComparer.Ordinal);

    /// <summary>Current snapshots of a resource's instances (one per replica), ordered by instance id.</summary>
    public IReadOnlyList<ResourceEvent> Instances(string resource) =>
        [.. _instances.Values.Where(e => e.Resource.Name == resource)
            .Select(e => App.ResourceNotifications.TryGetCurrentState(e.ResourceId, out var current) && current is not null ? current : e)
            .OrderBy(e => e.ResourceId, StringComparer.Ordinal)];

    /// <summary>The instance id (e.g. <c>model-worker-abcd1234</c>) of one replica.</summary>
    public string InstanceId(string resource, int replica = 0) => Instance(resource, replica).ResourceId;

    /// <summary>The process id of one replica of an executable or project resource.</summary>
    public int ProcessId(string resource, int replica = 0)
    {
        var instance = Instance(resource, replica);
        var pid = instance.Snapshot.Properties.FirstOrDefault(p => p.Name == "executable.pid")?.Value;
        return pid is null
            ? throw new InvalidOperationException($"'{instance.ResourceId}' has no process id (state {instance.Snapshot.State?.Text}).")
            : Convert.ToInt32(pid, CultureInfo.InvariantCulture);
    }

    /// <summary>The process ids of every replica of a resource, in replica order.</summary>
    public IReadOnlyList<int> ProcessIds(string resource) => [.. Enumerable.Range(0, Instances(resource).Count).Select(i => ProcessId(resource, i))];

    /// <summary>A resource's endpoint as clients reach it (through Aspire's proxy when the resource is replicated).</summary>
    public Uri GetEndpoint(string resource, string? endpoint = null) => App.GetEndpoint(resource, endpoint);

    /// <summary>A client for a resource's endpoint (through Aspire's proxy when the resource is replicated).</summary>
    public HttpClient CreateHttpClient(string resource, string? endpoint = null) => App.CreateHttpClient(resource, endpoint);

    /// <summary>
    /// A client for one replica, bypassing Aspire's proxy: the address it listens on is the first of <c>ASPNETCORE_URLS</c> in
    /// the replica's environment.
    /// </summary>
    public HttpClient CreateReplicaHttpClient(string resource, int replica) => new() { BaseAddress = ReplicaAddress(resource, replica) };

    /// <summary>
    /// The address one replica listens on, bypassing Aspire's proxy: its HTTP endpoint from <c>ASPNETCORE_URLS</c> in the
    /// replica's environment, or with <paramref name="endpoint"/> "grpc" its HTTP/2-only gRPC endpoint (<c>GRPC_PORT</c>).
    /// </summary>
    public Uri ReplicaAddress(string resource, int replica, string endpoint = "http")
    {
        var instance = Instance(resource, replica);
        var environment = instance.Snapshot.EnvironmentVariables.GroupBy(e => e.Name).ToDictionary(g => g.Key, g => g.Last().Value);
        var urls = environment.GetValueOrDefault("ASPNETCORE_URLS")
            ?? throw new InvalidOperationException($"'{instance.ResourceId}' has no ASPNETCORE_URLS.");
        var grpcPort = environment.GetValueOrDefault("GRPC_PORT");
        var addresses = urls.Split(';', StringSplitOptions.RemoveEmptyEntries).Select(u => new Uri(u)).ToList();
        var address = endpoint == "grpc"
            ? addresses.FirstOrDefault(u => u.Port.ToString(CultureInfo.InvariantCulture) == grpcPort)
            : addresses.FirstOrDefault(u => u.Port.ToString(CultureInfo.InvariantCulture) != grpcPort);
        return address ?? throw new InvalidOperationException($"'{instance.ResourceId}' has no '{endpoint}' address in ASPNETCORE_URLS={urls} (GRPC_PORT={grpcPort}).");
    }

    /// <summary>The value of one of the AppHost's parameters (e.g. a generated secret), as the services receive it.</summary>
    public async Task<string> GetParameterValueAsync(string name, CancellationToken cancellationToken = default)
    {
        var parameter = Model.Resources.OfType<ParameterResource>().FirstOrDefault(p => p.Name == name)
            ?? throw new InvalidOperationException($"The model has no parameter '{name}'.");
        return await parameter.GetValueAsync(cancellationToken) ?? throw new InvalidOperationException($"Parameter '{name}' has no value.");
    }

    /// <summary>The internal credential the model workers demand of their callers (parameter <c>internal-api-key</c>).</summary>
    public Task<string> InternalApiKeyAsync(CancellationToken cancellationToken = default) => GetParameterValueAsync("internal-api-key", cancellationToken);

    /// <summary>A client for one model-worker replica's HTTP endpoint carrying the internal credential (its JSON listing needs it).</summary>
    public async Task<HttpClient> CreateWorkerHttpClientAsync(int replica, CancellationToken cancellationToken = default)
    {
        var client = CreateReplicaHttpClient("model-worker", replica);
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", await InternalApiKeyAsync(cancellationToken));
        return client;
    }

    /// <summary>A resource's connection string (e.g. "platformdb", "redis").</summary>
    public async Task<string> GetConnectionStringAsync(string resource, CancellationToken cancellationToken = default) =>
        await App.GetConnectionStringAsync(resource, cancellationToken)
        ?? throw new InvalidOperationException($"'{resource}' has no connection string.");

    /// <summary>Runs a resource command (<c>stop</c>, <c>start</c>, <c>restart</c>) on one replica, as the dashboard's buttons do.</summary>
    public async Task ExecuteCommandAsync(string resource, string command, int replica = 0, CancellationToken cancellationToken = default)
    {
        var id = InstanceId(resource, replica);
        var result = await App.ResourceCommands.ExecuteCommandAsync(id, command, cancellationToken);
        if (!result.Success)
        {
            throw new InvalidOperationException($"Command '{command}' on '{id}' failed: {result.Message}");
        }
    }

    /// <summary>Stops one replica and waits until it is no longer running.</summary>
    public async Task StopAsync(string resource, int replica = 0, CancellationToken cancellationToken = default)
    {
        var id = InstanceId(resource, replica);
        await ExecuteCommandAsync(resource, KnownResourceCommands.StopCommand, replica, cancellationToken);
        await WaitForInstanceAsync(id, "stopped", s => s.State?.Text is not (null or "Running" or "Starting" or "Stopping"), cancellationToken);
    }

    /// <summary>Starts a stopped replica (or restarts a killed one) and waits until it is Running, Healthy and answering.</summary>
    public async Task StartAsync(string resource, int replica = 0, CancellationToken cancellationToken = default)
    {
        var id = InstanceId(resource, replica);
        await ExecuteCommandAsync(resource, KnownResourceCommands.StartCommand, replica, cancellationToken);
        await WaitForInstanceAsync(id, "Running and Healthy", s => s.State?.Text == KnownResourceStates.Running && s.HealthStatus == HealthStatus.Healthy, cancellationToken);
        await WaitForReplicaHealthAsync(resource, replica, null, cancellationToken);
    }

    /// <summary>For a service replica (one with <c>ASPNETCORE_URLS</c>): waits until its own <c>/health</c> answers 200.</summary>
    public async Task WaitForReplicaHealthAsync(string resource, int replica, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        if (Instance(resource, replica).Snapshot.EnvironmentVariables.All(e => e.Name != "ASPNETCORE_URLS"))
        {
            return;
        }

        using var client = CreateReplicaHttpClient(resource, replica);
        client.Timeout = TimeSpan.FromSeconds(5);
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(90));
        var last = "no answer";
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                using var response = await client.GetAsync("/health", cancellationToken);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }

                last = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken)}";
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                last = ex.Message;
            }

            await Task.Delay(200, cancellationToken);
        }

        throw new TimeoutException($"Replica {replica} of '{resource}' ({client.BaseAddress}) did not answer /health with 200: {last}\n{Describe(resource)}");
    }

    /// <summary>SIGKILLs one replica's process (no chance to clean up) and waits until Aspire sees it gone.</summary>
    public async Task KillAsync(string resource, int replica = 0, CancellationToken cancellationToken = default)
    {
        var id = InstanceId(resource, replica);
        using (var process = Process.GetProcessById(ProcessId(resource, replica)))
        {
            process.Kill();
        }

        await WaitForInstanceAsync(id, "exited", s => s.State?.Text is not (null or "Running" or "Starting"), cancellationToken);
    }

    /// <summary>
    /// SIGTERMs one replica's process, as Kubernetes does to a pod it removes, and returns at once: the replica drains
    /// and stops by itself (<see cref="WaitForExitAsync"/>).
    /// </summary>
    public Task TerminateAsync(string resource, int replica = 0, CancellationToken cancellationToken = default) =>
        SignalAsync(ProcessId(resource, replica), "TERM", cancellationToken);

    /// <summary>Waits until Aspire sees one replica's process gone (after <see cref="TerminateAsync"/>).</summary>
    public Task WaitForExitAsync(string resource, int replica = 0, CancellationToken cancellationToken = default) =>
        WaitForInstanceAsync(InstanceId(resource, replica), "exited", s => s.State?.Text is not (null or "Running" or "Starting" or "Stopping"), cancellationToken);

    /// <summary>
    /// Freezes one replica's process (SIGSTOP): its sockets stay open and it answers nothing, as a hung process or a
    /// frozen VM does, until <see cref="ResumeAsync"/>.
    /// </summary>
    public Task PauseAsync(string resource, int replica = 0, CancellationToken cancellationToken = default) =>
        SignalAsync(ProcessId(resource, replica), "STOP", cancellationToken);

    /// <summary>Lets a process frozen by <see cref="PauseAsync"/> run again (SIGCONT).</summary>
    public Task ResumeAsync(string resource, int replica = 0, CancellationToken cancellationToken = default) =>
        SignalAsync(ProcessId(resource, replica), "CONT", cancellationToken);

    private static async Task SignalAsync(int processId, string signal, CancellationToken cancellationToken)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-" + signal, processId.ToString(System.Globalization.CultureInfo.InvariantCulture)])
        {
            UseShellExecute = false,
        }) ?? throw new InvalidOperationException("could not start kill");
        await kill.WaitForExitAsync(cancellationToken);
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -{signal} {processId} exited with {kill.ExitCode}");
        }
    }

    /// <summary>What <see cref="Logs"/> puts before a line the process wrote to stderr.</summary>
    public const string StderrMark = "stderr: ";

    /// <summary>The last <paramref name="lines"/> console lines of each instance of <paramref name="resource"/> (stderr ones marked <see cref="StderrMark"/>).</summary>
    public string Logs(string resource, int lines = 40)
    {
        var text = new StringBuilder();
        foreach (var instance in _logs.Where(l => l.Key == resource || l.Key.StartsWith(resource + "-", StringComparison.Ordinal)).OrderBy(l => l.Key, StringComparer.Ordinal))
        {
            foreach (var line in instance.Value.TakeLast(lines))
            {
                text.Append(instance.Key).Append(" | ").AppendLine(line);
            }
        }

        return text.ToString();
    }

    /// <summary>Each instance's state and health (and the last log lines of the given resource): for failure messages.</summary>
    public string Describe(string? resource = null)
    {
        var text = new StringBuilder();
        foreach (var e in _instances.Values.OrderBy(e => e.ResourceId, StringComparer.Ordinal))
        {
            var reports = string.Join("; ", e.Snapshot.HealthReports.Select(r => $"{r.Name}={r.Status} {r.Description}{r.ExceptionText?.Split('\n')[0]}"));
            text.AppendLine(CultureInfo.InvariantCulture, $"  {e.ResourceId}: {e.Snapshot.State?.Text ?? "?"} / {e.Snapshot.HealthStatus?.ToString() ?? "-"} {reports}");
        }

        foreach (var name in resource is null ? _instances.Values.Where(IsUnhealthyService).Select(e => e.Resource.Name).Distinct() : [resource])
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"-- last lines of {name}:").Append(Logs(name, 30));
        }

        return text.ToString();
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        await App.DisposeAsync();
        if (_watching is not null)
        {
            await _watching.ContinueWith(_ => { }, TaskScheduler.Default);
        }

        _stopping.Dispose();
        try
        {
            _data.Delete(recursive: true);
        }
        catch (IOException)
        {
            // A server still flushing; the temp folder is cleaned by the OS eventually.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static bool IsUnhealthyService(ResourceEvent e) =>
        e.Resource is ProjectResource or ExecutableResource && e.Snapshot.HealthStatus is not HealthStatus.Healthy;

    private int Replicas(string resource) =>
        Model.Resources.FirstOrDefault(r => r.Name == resource) is { } r && r.TryGetLastAnnotation<ReplicaAnnotation>(out var replicas) ? replicas.Replicas : 1;

    private ResourceEvent Instance(string resource, int replica)
    {
        var instances = Instances(resource);
        return replica < instances.Count
            ? instances[replica]
            : throw new InvalidOperationException($"'{resource}' has {instances.Count} instance(s); replica {replica} does not exist.");
    }

    private async Task WaitForInstanceAsync(string instanceId, string what, Func<CustomResourceSnapshot, bool> condition, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(TimeSpan.FromSeconds(90));
        try
        {
            await foreach (var update in App.ResourceNotifications.WatchAsync(cts.Token))
            {
                if (update.ResourceId == instanceId && condition(update.Snapshot))
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"'{instanceId}' did not become {what} in time.\n{Describe(_instances.TryGetValue(instanceId, out var e) ? e.Resource.Name : null)}");
        }
    }

    /// <summary>Keeps the latest snapshot of every instance and the console lines of every instance that ever ran.</summary>
    private async Task WatchAsync(CancellationToken cancellationToken)
    {
        var loggers = App.Services.GetRequiredService<ResourceLoggerService>();
        var following = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            await foreach (var update in App.ResourceNotifications.WatchAsync(cancellationToken))
            {
                _instances[update.ResourceId] = update;
                if (update.Resource is ParameterResource || !following.Add(update.ResourceId))
                {
                    continue;
                }

                var lines = _logs.GetOrAdd(update.ResourceId, _ => new ConcurrentQueue<string>());
                _ = Task.Run(async () =>
                {
                    try
                    {
                        await foreach (var batch in loggers.WatchAsync(update.ResourceId).WithCancellation(cancellationToken))
                        {
                            foreach (var line in batch)
                            {
                                // Marked, so tests can tell what a process wrote to stderr (the dashboard shows it as errors).
                                lines.Enqueue(line.IsErrorMessage ? StderrMark + line.Content : line.Content);
                                while (lines.Count > 500 && lines.TryDequeue(out _))
                                {
                                }
                            }
                        }
                    }
                    catch (OperationCanceledException)
                    {
                    }
                }, CancellationToken.None);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
