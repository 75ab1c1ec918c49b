using Platform.Hosting.ApplicationModel;
using Map = System.Collections.Generic.OrderedDictionary<string, object?>;

namespace Platform.Hosting.Publishing.Kubernetes;

/// <summary>
/// What the official images of the infrastructure servers need to run with a read-only root
/// filesystem as a non-root user, and how to ask them whether they are ready.
/// </summary>
internal static class Traits
{
    /// <summary>Variables an image needs in a pod that run mode does not.</summary>
    public static IEnumerable<KeyValuePair<string, object>> ExtraEnvironment(IResource resource) => resource switch
    {
        // A fresh volume's root holds lost+found, which initdb refuses; the cluster lives one level down.
        PostgresServerResource => [new("PGDATA", "/var/lib/postgresql/data/pgdata")],
        _ => [],
    };

    /// <summary>Paths besides /tmp the process writes to (emptyDir volumes).</summary>
    public static IEnumerable<string> WritablePaths(IResource resource) => resource switch
    {
        PostgresServerResource => ["/var/run/postgresql"],
        _ => [],
    };

    /// <summary>A readiness command for servers that have no HTTP health endpoint.</summary>
    public static Map? ReadinessExec(IResource resource) => resource switch
    {
        PostgresServerResource pg => Exec(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-U", pg.UserNameParameter.Secret ? "postgres" : pg.UserNameParameter.Value]),
        // REDISCLI_AUTH keeps the password off redis-cli's command line.
        RedisResource r => Exec(["sh", "-c", $"REDISCLI_AUTH=\"${KubernetesValueRenderer.SecretVariable(r.PasswordParameter)}\" redis-cli -h 127.0.0.1 ping | grep -q PONG"]),
        _ => null,
    };

    private static Map Exec(IEnumerable<string> command) =>
        new() { ["exec"] = new Map { ["command"] = command.Cast<object?>().ToList() } };
}

/// <summary>Readiness, liveness and start-up probes from the model's health annotations.</summary>
internal static class Probes
{
    public static IEnumerable<KeyValuePair<string, Map>> For(IResource resource)
    {
        var endpoints = resource.GetEndpoints();
        var primary = endpoints.FirstOrDefault()
            ?? throw new DistributedApplicationException($"Resource '{resource.Name}' has no endpoint to probe.");
        var readiness = resource.TryGetLastAnnotation<HttpHealthCheckAnnotation>(out var health)
            ? HttpGet(health.Path, health.EndpointName)
            : Traits.ReadinessExec(resource) ?? Tcp(primary.Name);
        var liveness = resource.TryGetLastAnnotation<LivenessProbeAnnotation>(out var alive)
            ? HttpGet(alive.Path, alive.EndpointName)
            : Tcp(primary.Name);

        // Readiness: taken out of the Service quickly when a dependency fails, back as soon as it recovers.
        yield return new("readinessProbe", With(readiness, period: 10, timeout: 3, failures: 3));

        // Liveness: only a wedged process, so it is slower to give up than readiness.
        yield return new("livenessProbe", With(liveness, period: 20, timeout: 3, failures: 3));

        if (resource is ProjectResource)
        {
            // Holds liveness back while the runtime starts (2 minutes); slower starters extend it in an overlay.
            yield return new("startupProbe", With(alive is not null ? HttpGet(alive.Path, alive.EndpointName) : Tcp(primary.Name),
                period: 5, timeout: 3, failures: 24));
        }
    }

    private static Map HttpGet(string path, string port) =>
        new() { ["httpGet"] = new Map { ["path"] = path, ["port"] = port } };

    private static Map Tcp(string port) => new() { ["tcpSocket"] = new Map { ["port"] = port } };

    private static Map With(Map action, int period, int timeout, int failures)
    {
        var probe = new Map(action)
        {
            ["periodSeconds"] = period,
            ["timeoutSeconds"] = timeout,
            ["failureThreshold"] = failures,
        };
        return probe;
    }
}
