using System.Globalization;
using Microsoft.Extensions.Options;
using Platform.ServiceDefaults.ServiceDiscovery;

namespace Platform.Inference.Routing;

/// <summary>One model-worker replica as the router addresses it.</summary>
/// <param name="Id">Stable identity of the replica (its index or instance id): balancing state follows it.</param>
/// <param name="GrpcAddress">Base address of the replica's gRPC endpoint (HTTP/2 only): inference, load state, statistics.</param>
/// <param name="HttpAddress">Base address of its HTTP/1.1 endpoint (health, metrics, JSON model listing), when known.</param>
public sealed record WorkerReplica(string Id, Uri GrpcAddress, Uri? HttpAddress);

/// <summary>
/// Where the router learns which worker replicas exist. Today's source is configuration (Aspire's service discovery
/// keys); a source fed by the workers announcing themselves can replace it without touching the router.
/// </summary>
public interface IWorkerReplicaSource
{
    /// <summary>The replicas to route to now; empty when none is known.</summary>
    ValueTask<IReadOnlyList<WorkerReplica>> GetReplicasAsync(CancellationToken cancellationToken);
}

/// <summary>
/// Replicas from service discovery configuration: <c>services:{ServiceName}:{GrpcEndpointName}:{i}</c> is replica
/// <c>i</c>'s gRPC address and <c>services:{ServiceName}:http:{i}</c> its HTTP/1.1 address (environment
/// <c>services__model-worker__grpc__0</c>...), as the AppHost injects them.
/// </summary>
public sealed class ConfigurationWorkerReplicaSource(IServiceEndpointResolver resolver, IOptions<WorkerRoutingOptions> options) : IWorkerReplicaSource
{
    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<WorkerReplica>> GetReplicasAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        IReadOnlyList<ServiceEndpoint> endpoints;
        try
        {
            endpoints = await resolver.GetEndpointsAsync(settings.ServiceName, cancellationToken);
        }
        catch (ServiceEndpointNotFoundException)
        {
            return [];
        }

        var http = endpoints.Where(e => e.EndpointName.Equals("http", StringComparison.OrdinalIgnoreCase)).ToDictionary(e => e.Index, e => e.Address);
        return
        [
            .. endpoints
                .Where(e => e.EndpointName.Equals(settings.GrpcEndpointName, StringComparison.OrdinalIgnoreCase))
                .OrderBy(e => e.Index)
                .Select(e => new WorkerReplica(e.Index.ToString(CultureInfo.InvariantCulture), e.Address, http.GetValueOrDefault(e.Index))),
        ];
    }
}
