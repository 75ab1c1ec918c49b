using Platform.WorkerDiscovery;

namespace Platform.Inference.Routing;

/// <summary>One model-worker replica as the router addresses it.</summary>
/// <param name="Id">Stable identity of the replica (its index or instance id): balancing state follows it.</param>
/// <param name="GrpcAddress">Base address of the replica's gRPC endpoint (HTTP/2 only): inference, load state, statistics.</param>
/// <param name="HttpAddress">Base address of its HTTP/1.1 endpoint (health, metrics, JSON model listing), when known.</param>
public sealed record WorkerReplica(string Id, Uri GrpcAddress, Uri? HttpAddress);

/// <summary>
/// Where the router learns which worker replicas exist: <see cref="AnnouncedWorkerReplicaSource"/> reads the replicas'
/// own announcements (Aspire's proxy and a Kubernetes ClusterIP would each show only one address for all of them).
/// </summary>
public interface IWorkerReplicaSource
{
    /// <summary>The replicas to route to now; empty when none is known.</summary>
    ValueTask<IReadOnlyList<WorkerReplica>> GetReplicasAsync(CancellationToken cancellationToken);
}

/// <summary>The replicas that announced a gRPC address in Redis within the time to live (<see cref="IWorkerDirectory"/>).</summary>
public sealed class AnnouncedWorkerReplicaSource(IWorkerDirectory directory) : IWorkerReplicaSource
{
    /// <inheritdoc />
    public ValueTask<IReadOnlyList<WorkerReplica>> GetReplicasAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult<IReadOnlyList<WorkerReplica>>(
        [
            .. directory.Workers
                .Where(w => w.GrpcAddress is not null)
                .Select(w => new WorkerReplica(w.InstanceId, w.GrpcAddress!, w.Address)),
        ]);
}
