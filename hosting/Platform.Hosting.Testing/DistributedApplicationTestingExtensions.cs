using System.Text;
using Platform.Hosting.ApplicationModel;

namespace Platform.Hosting.Testing;

/// <summary>Reaching the resources of a running application from a test.</summary>
public static class DistributedApplicationTestingExtensions
{
    /// <summary>Default time a test waits for a resource to become healthy.</summary>
    public static readonly TimeSpan DefaultWaitTimeout = TimeSpan.FromSeconds(90);

    /// <summary>An HttpClient whose base address is the resource's endpoint (replica 0 unless stated).</summary>
    public static HttpClient CreateHttpClient(this DistributedApplication app, string resourceName, string? endpointName = null, int replica = 0) =>
        new() { BaseAddress = app.GetEndpoint(resourceName, endpointName, replica) };

    /// <summary>The URL of a resource's endpoint.</summary>
    public static Uri GetEndpoint(this DistributedApplication app, string resourceName, string? endpointName = null, int replica = 0)
    {
        var resource = Find(app, resourceName);
        var endpoints = resource.GetEndpoints();
        var endpoint = (endpointName is null ? endpoints.FirstOrDefault(e => e.UriScheme is "http" or "https") ?? endpoints.FirstOrDefault()
                : endpoints.FirstOrDefault(e => e.Name == endpointName))
            ?? throw new ArgumentException($"Resource '{resourceName}' has no endpoint '{endpointName ?? "http"}'. It has: {string.Join(", ", endpoints.Select(e => e.Name))}.");
        var allocated = endpoint.GetAllocated(replica)
            ?? throw new InvalidOperationException($"Endpoint '{endpoint.Name}' of '{resourceName}' (replica {replica}) is not allocated: start the application first.");
        return new Uri(allocated.Url);
    }

    /// <summary>The connection string the application injects for a resource.</summary>
    public static async Task<string?> GetConnectionStringAsync(this DistributedApplication app, string resourceName, CancellationToken cancellationToken = default) =>
        Find(app, resourceName) is IResourceWithConnectionString r
            ? await r.ConnectionStringExpression.GetValueAsync(cancellationToken).ConfigureAwait(false)
            : throw new ArgumentException($"Resource '{resourceName}' has no connection string.");

    /// <summary>
    /// Waits for a resource to be healthy, for <see cref="DefaultWaitTimeout"/> unless told otherwise. An unknown name
    /// or a terminal state fails at once; every failure quotes the resource's health report and last log lines.
    /// </summary>
    public static async Task<ResourceSnapshot> WaitForResourceHealthyAsync(this DistributedApplication app, string resourceName,
        TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var limit = timeout ?? DefaultWaitTimeout;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(limit);
        try
        {
            return await app.ResourceNotifications.WaitForResourceHealthyAsync(resourceName, cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"'{resourceName}' did not become healthy within {limit.TotalSeconds:F0} s.{Describe(app, resourceName)}");
        }
        catch (DistributedApplicationException ex)
        {
            throw new DistributedApplicationException(ex.Message + Describe(app, resourceName), ex);
        }
    }

    /// <summary>Waits for every resource (parameters aside) to be healthy.</summary>
    public static async Task WaitForAllHealthyAsync(this DistributedApplication app, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var names = app.Resources.Where(r => r is not ParameterResource).Select(r => r.Name);
        await Task.WhenAll(names.Select(n => app.WaitForResourceHealthyAsync(n, timeout, cancellationToken))).ConfigureAwait(false);
    }

    private static IResource Find(DistributedApplication app, string name) =>
        app.Resources.Find(name) ?? throw new ArgumentException(
            $"Unknown resource '{name}'. Known resources: {string.Join(", ", app.Resources.Select(r => r.Name))}.");

    private static string Describe(DistributedApplication app, string name)
    {
        var snapshot = app.ResourceNotifications.TryGet(name);
        if (snapshot is null)
        {
            return string.Empty;
        }

        var text = new StringBuilder();
        text.AppendLine().Append($"State: {snapshot.State}, health: {snapshot.Health?.ToString() ?? "unknown"}");
        foreach (var report in snapshot.HealthReports)
        {
            text.AppendLine().Append($"  check {report.Name}: {report.Status} {report.Description}");
        }

        var lines = app.ResourceLogs.GetLines(name, 20);
        text.AppendLine().Append(lines.Count == 0 ? "No console output." : "Last console output:");
        foreach (var line in lines)
        {
            text.AppendLine().Append($"  [{line.InstanceId}] {line.Text}");
        }

        return text.ToString();
    }
}
