using Aspire.Hosting.ApplicationModel;

namespace Platform.Hosting;

/// <summary>Platform's convention for a service's gRPC endpoint.</summary>
public static class GrpcEndpointExtensions
{
    /// <summary>The endpoint's name (and the Kubernetes port name).</summary>
    public const string EndpointName = "grpc";

    /// <summary>
    /// Adds the endpoint <c>grpc</c> (scheme http, transport HTTP/2 cleartext) and passes its target port to the service as
    /// <c>GRPC_PORT</c>; <c>ASPNETCORE_URLS</c> lists it beside the http endpoint, and the service makes that listener
    /// HTTP/2-only. <paramref name="targetPort"/> fixes the port a pod listens on (publish mode); without it the
    /// orchestrator gives each replica its own.
    /// </summary>
    public static IResourceBuilder<ProjectResource> WithGrpcEndpoint(this IResourceBuilder<ProjectResource> builder, int? targetPort = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.WithHttpEndpoint(targetPort: targetPort, name: EndpointName)
            .WithEndpoint(EndpointName, endpoint => endpoint.Transport = "http2");
        var grpc = builder.GetEndpoint(EndpointName);
        return builder.WithEnvironment(context => context.EnvironmentVariables["GRPC_PORT"] = grpc.Property(EndpointProperty.TargetPort));
    }
}
