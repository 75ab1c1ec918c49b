namespace Platform.Inference.Routing;

/// <summary>Options of <see cref="WorkerClient"/> (configuration section <c>WorkerRouting</c>).</summary>
public sealed class WorkerRoutingOptions
{
    /// <summary>Configuration section.</summary>
    public const string SectionName = "WorkerRouting";

    /// <summary>A replica that does not accept a connection within this is treated as down.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// A connection to a replica with calls in flight that has received nothing for this long is pinged (HTTP/2 PING);
    /// see <see cref="KeepAlivePingTimeout"/>. Under load frames flow all the time, so pings go out only when a replica
    /// falls silent.
    /// </summary>
    public TimeSpan KeepAlivePingDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// A ping unanswered for this long closes the connection, and its calls move to another replica (resending is safe:
    /// inference has no side effects). A hung replica (a stopped process, a frozen VM) thus holds its calls for about
    /// <see cref="KeepAlivePingDelay"/> + this, not until their deadline (measured: a SIGSTOPped worker held every request
    /// of a 16-connection load for 30 s with the earlier 30 s + 10 s). A replica busy computing still answers pings:
    /// Kestrel handles them on the connection, not on the request's thread.
    /// </summary>
    public TimeSpan KeepAlivePingTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>How long a replica that failed to answer is avoided.</summary>
    public TimeSpan FailureCooldown { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Attempts per request across replicas (unreachable, UNAVAILABLE, RESOURCE_EXHAUSTED and NOT_FOUND move to another replica).</summary>
    public int MaxAttempts { get; set; } = 6;

    /// <summary>
    /// How long an answer to "is this version loaded on some replica" is reused, so readiness probes do not fan out to
    /// every replica each time.
    /// </summary>
    public TimeSpan ReadinessCacheDuration { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// 0 (default): spread, least outstanding requests with ties rotating. Above 0: pack, the first healthy replica with
    /// fewer than this many requests in flight takes the next request (see <see cref="ReplicaBalancer"/>); for replicas
    /// that share a machine's cores, where one busy replica batches better and keeps one copy of the weights in cache.
    /// </summary>
    public int PackBelow { get; set; }

    /// <summary>Pause before trying the same replicas again once every replica has been tried.</summary>
    public TimeSpan RetryBackoff { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// The internal credential sent on every call (<c>authorization: Bearer …</c>); the workers refuse calls without it.
    /// Bound from <c>Parameters:internal-api-key</c> (the AppHost's secret parameter) by <see cref="RoutingServiceCollectionExtensions.AddWorkerRouting"/>.
    /// </summary>
    public string? InternalApiKey { get; set; }

    /// <summary>Largest message either side of the hop may send (a request's inputs or its outputs).</summary>
    public int MaxMessageBytes { get; set; } = 256 * 1024 * 1024;

    /// <summary>
    /// Worker calls per model version in flight from this process before further requests for that version queue and
    /// share the next call (0 turns sharing off: one call per request). Sharing is what makes the hop's per-call cost
    /// (HTTP/2 framing, protobuf, scheduling on both ends) a per-batch cost; a free slot sends a request at once. Two, not
    /// more: fewer, larger calls cost both ends less per request (measured side by side against 4 and 1, docs/serving-performance-log.md),
    /// and one call held up (a slow replica, a retry) still leaves a slot for the requests behind it.
    /// </summary>
    public int CoalesceCallsInFlight { get; set; } = 2;

    /// <summary>Most requests one shared worker call carries.</summary>
    public int CoalesceMaxItems { get; set; } = 64;
}
