using Platform.Aspirate.Manifest;
using Map = System.Collections.Generic.OrderedDictionary<string, object?>;

namespace Platform.Aspirate.Kubernetes;

/// <summary>
/// What the official server images need in a hardened pod (non-root, read-only root filesystem) and how to ask them
/// whether they are ready; the manifest says neither. Keyed by the image's repository name, so Aspire's
/// <c>AddPostgres</c>, <c>AddRedis</c> and a MinIO container are recognised whatever their registry or tag.
/// </summary>
internal static class ImageConventions
{
    /// <summary>The repository's last path segment: <c>docker.io/library/postgres:15.18</c> is <c>postgres</c>.</summary>
    public static string? Repository(WorkloadResource w)
    {
        if (w.Image is null)
        {
            return null;
        }

        var name = w.Image.Split('@')[0];
        var lastSlash = name.LastIndexOf('/');
        var colon = name.LastIndexOf(':');
        if (colon > lastSlash)
        {
            name = name[..colon];
        }

        return name[(lastSlash + 1)..];
    }

    /// <summary>Variables the image needs in a pod that the manifest does not set.</summary>
    public static IEnumerable<KeyValuePair<string, string>> ExtraEnvironment(WorkloadResource w) => Repository(w) switch
    {
        // A fresh volume's root holds lost+found, which initdb refuses; the cluster lives one level down.
        "postgres" when w.Volumes.FirstOrDefault(v => v.Target == "/var/lib/postgresql/data") is { } data =>
            [KeyValuePair.Create("PGDATA", $"{data.Target}/pgdata")],
        _ => [],
    };

    /// <summary>
    /// Variables holding the container's own resources (the downward API's <c>resourceFieldRef</c>): name, resource and
    /// divisor. Redis reads its memory limit in MiB to set <c>maxmemory</c> below it (Platform.Hosting's
    /// <c>RedisBuilderExtensions.ServerOptions</c>); without a limit Kubernetes gives the node's allocatable memory.
    /// </summary>
    public static IEnumerable<(string Name, string Resource, string Divisor)> ResourceFields(WorkloadResource w) => Repository(w) switch
    {
        "redis" => [("REDIS_MEMORY_LIMIT_MIB", "limits.memory", "1Mi")],
        _ => [],
    };

    /// <summary>Paths besides /tmp the process writes to (emptyDir volumes under a read-only root).</summary>
    public static IEnumerable<string> WritablePaths(WorkloadResource w) => Repository(w) switch
    {
        "postgres" => ["/var/run/postgresql"],
        _ => [],
    };

    /// <summary>A readiness probe's action for servers without an HTTP health endpoint of Aspire's convention.</summary>
    /// <param name="w">The container.</param>
    /// <param name="literalEnvironment">A non-secret variable's value in the pod, or null.</param>
    /// <param name="secretVariable">The first variable the pod sets to a secret (a server's password), or null.</param>
    public static Map? Readiness(WorkloadResource w, Func<string, string?> literalEnvironment, string? secretVariable) =>
        Repository(w) switch
        {
            "postgres" => Exec(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-U", literalEnvironment("POSTGRES_USER") ?? "postgres"]),

            // REDISCLI_AUTH keeps the password off redis-cli's command line (and so out of the process list).
            "redis" when secretVariable is not null =>
                Exec(["sh", "-c", $"REDISCLI_AUTH=\"${secretVariable}\" redis-cli -h 127.0.0.1 ping | grep -q PONG"]),
            "redis" => Exec(["sh", "-c", "redis-cli -h 127.0.0.1 ping | grep -q PONG"]),
            "minio" when w.Bindings.FirstOrDefault(b => b.Scheme == "http") is { } http =>
                new Map { ["httpGet"] = new Map { ["path"] = "/minio/health/live", ["port"] = http.Name } },
            _ => null,
        };

    private static Map Exec(IEnumerable<string> command) =>
        new() { ["exec"] = new Map { ["command"] = command.Cast<object?>().ToList() } };
}
