using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Platform.Hosting;
using Platform.Hosting.ApplicationModel;
using Platform.Hosting.Dashboard;
using Platform.Hosting.Telemetry;

namespace Platform.Dashboard.Tests;

/// <summary>A dashboard on a free loopback port over hand-published resource snapshots.</summary>
internal sealed class DashboardHost : IAsyncDisposable
{
    public const string Token = "test-browser-token";

    private DashboardHost(DashboardServer server, DashboardAuth auth, TelemetryStore store, ResourceNotificationService notifications,
        ResourceLoggerService logs, FakeActions actions)
    {
        Server = server;
        Auth = auth;
        Store = store;
        Notifications = notifications;
        Logs = logs;
        Actions = actions;
    }

    public DashboardServer Server { get; }

    public DashboardAuth Auth { get; }

    public TelemetryStore Store { get; }

    public ResourceNotificationService Notifications { get; }

    public ResourceLoggerService Logs { get; }

    public FakeActions Actions { get; }

    public string Url => Server.Url;

    public static async Task<DashboardHost> StartAsync(TelemetryStoreOptions? storeOptions = null, string? telemetryDirectory = null)
    {
        var options = Options.Create(new DashboardOptions
        {
            Port = 0,
            BrowserToken = Token,
            PersistTelemetry = telemetryDirectory is not null,
            TelemetryDirectory = telemetryDirectory,
            PersistInterval = TimeSpan.FromMilliseconds(200),
        });
        var notifications = new ResourceNotificationService();
        notifications.Publish(Snapshot("api", KnownResourceStates.Running, HealthStatus.Healthy, 1234));
        notifications.Publish(Snapshot("worker", KnownResourceStates.Running, HealthStatus.Healthy, 1235, 1236));
        var logs = new ResourceLoggerService(TimeProvider.System);
        var actions = new FakeActions();
        var store = new TelemetryStore(Options.Create(storeOptions ?? new TelemetryStoreOptions()));
        var auth = new DashboardAuth(options, TimeProvider.System);
        var server = new DashboardServer(options, new DashboardEndpoint(options), auth, notifications, logs, actions, store,
            NullLoggerFactory.Instance, TimeProvider.System);
        await server.StartAsync(CancellationToken.None);
        return new DashboardHost(server, auth, store, notifications, logs, actions);
    }

    public HttpClient Client(bool authenticated = true)
    {
        var client = new HttpClient { BaseAddress = new Uri(Url) };
        if (authenticated)
        {
            client.DefaultRequestHeaders.Authorization = new("Bearer", Token);
        }

        return client;
    }

    public static ResourceSnapshot Snapshot(string name, string state, HealthStatus? health, params int[] pids) => new(
        name, "Project", state, health,
        [new ResourceEndpointSnapshot("http", "http://127.0.0.1:5000", false)],
        pids.Select((pid, i) => new ReplicaSnapshot($"{name}-{i}", i, state, health, pid, null, DateTimeOffset.UtcNow, null, i, [], [])).ToList(),
        [new HealthReportSnapshot("http /health", HealthStatus.Healthy, "GET /health answered 200", DateTimeOffset.UtcNow)],
        [new EnvironmentVariableSnapshot("ConnectionStrings__db", "****", true), new EnvironmentVariableSnapshot("OTEL_SERVICE_NAME", name, false)],
        ["postgres"], true, null);

    public async ValueTask DisposeAsync()
    {
        await Server.StopAsync(CancellationToken.None);
        await Server.DisposeAsync();
    }
}

/// <summary>Records the actions the API asked for.</summary>
internal sealed class FakeActions : IResourceActions
{
    public List<(string Verb, string Resource, string? Instance)> Calls { get; } = [];

    public Task StopAsync(string resource, string? instanceId, CancellationToken cancellationToken) => Record("stop", resource, instanceId);

    public Task StartAsync(string resource, string? instanceId, CancellationToken cancellationToken) => Record("start", resource, instanceId);

    public Task RestartAsync(string resource, string? instanceId, CancellationToken cancellationToken) => Record("restart", resource, instanceId);

    private Task Record(string verb, string resource, string? instance)
    {
        lock (Calls)
        {
            Calls.Add((verb, resource, instance));
        }

        return instance == "missing" ? Task.FromException(new DistributedApplicationException($"Resource '{resource}' has no replica 'missing'.")) : Task.CompletedTask;
    }
}
