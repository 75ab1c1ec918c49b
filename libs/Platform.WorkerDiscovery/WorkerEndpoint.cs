using System.Text.Json.Serialization;

namespace Platform.WorkerDiscovery;

/// <summary>One worker replica as it announces itself.</summary>
/// <param name="InstanceId">The replica's identity (<c>service.instance.id</c>, or host and pid).</param>
/// <param name="Address">Base address of its HTTP endpoint (health, metrics, listings), e.g. <c>http://10.1.2.3:8080/</c>.</param>
/// <param name="GrpcAddress">Base address of its HTTP/2 gRPC endpoint, when it serves one.</param>
/// <param name="StartedAt">When the replica started, so callers can tell a restarted replica from the old one.</param>
public sealed record WorkerEndpoint(
    [property: JsonPropertyName("id")] string InstanceId,
    [property: JsonPropertyName("address")] Uri Address,
    [property: JsonPropertyName("grpc")] Uri? GrpcAddress,
    [property: JsonPropertyName("started")] DateTimeOffset StartedAt);

/// <summary>The live set of worker replicas, as seen by a caller.</summary>
public interface IWorkerDirectory
{
    /// <summary>Replicas that announced themselves within the time to live, ordered by instance id.</summary>
    IReadOnlyList<WorkerEndpoint> Workers { get; }

    /// <summary>Completes once the first list was read (or failed to be read), so a caller need not start blind.</summary>
    Task WaitForFirstRefreshAsync(CancellationToken cancellationToken);
}

/// <summary>Settings shared by announcers and readers (configuration section <c>WorkerDiscovery</c>).</summary>
public sealed class WorkerDiscoveryOptions
{
    /// <summary>Configuration section.</summary>
    public const string SectionName = "WorkerDiscovery";

    /// <summary>Redis key prefix of the announcements (a hash of endpoints and a sorted set of heartbeats).</summary>
    public string KeyPrefix { get; set; } = "platform:workers";

    /// <summary>The hash of announcements (instance id → endpoint JSON).</summary>
    internal string EndpointsKey => $"{KeyPrefix}:endpoints";

    /// <summary>The sorted set of heartbeats (instance id, scored by the last beat's Unix milliseconds).</summary>
    internal string HeartbeatsKey => $"{KeyPrefix}:heartbeats";

    /// <summary>How often a replica renews its announcement.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>An announcement older than this is ignored (and removed): the replica died without saying so.</summary>
    public TimeSpan TimeToLive { get; set; } = TimeSpan.FromSeconds(6);

    /// <summary>How often a caller re-reads the set.</summary>
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Host other services reach this replica on. Default: the <c>POD_IP</c> environment variable (Kubernetes downward API)
    /// when set, else the host the server is bound to (loopback in run mode).
    /// </summary>
    public string? AdvertiseHost { get; set; }
}
