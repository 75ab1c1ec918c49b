namespace Platform.Hosting.ApplicationModel;

/// <summary>A reference to one named endpoint of a resource (replica 0 unless stated).</summary>
public sealed class EndpointReference(IResourceWithEndpoints resource, string endpointName, int replica = 0) : IValueProvider, IManifestExpressionProvider
{
    /// <summary>Which replica's endpoint (run mode); publish mode has one address per service.</summary>
    public int Replica { get; } = replica;

    /// <summary>The resource that owns the endpoint.</summary>
    public IResourceWithEndpoints Resource { get; } = resource;

    /// <summary>Endpoint name.</summary>
    public string EndpointName { get; } = endpointName;

    /// <summary>The endpoint's annotation.</summary>
    public EndpointAnnotation Annotation =>
        Resource.Annotations.OfType<EndpointAnnotation>().FirstOrDefault(e => e.Name == EndpointName)
        ?? throw new InvalidOperationException($"Resource '{Resource.Name}' has no endpoint named '{EndpointName}'.");

    /// <summary>True when the endpoint is declared.</summary>
    public bool Exists => Resource.Annotations.OfType<EndpointAnnotation>().Any(e => e.Name == EndpointName);

    /// <summary>The URL, e.g. <c>http://127.0.0.1:5123</c> (run mode).</summary>
    public string Url => Allocated.Url;

    /// <summary>The host (run mode).</summary>
    public string Host => Allocated.Host;

    /// <summary>The port (run mode).</summary>
    public int Port => Allocated.Port;

    private AllocatedEndpoint Allocated => Annotation.GetAllocated(Replica)
        ?? throw new InvalidOperationException($"Endpoint '{EndpointName}' of '{Resource.Name}' (replica {Replica}) is not allocated yet.");

    /// <summary>One property of the endpoint as an expression part.</summary>
    public EndpointReferenceExpression Property(EndpointProperty property) => new(this, property);

    /// <inheritdoc />
    public ValueTask<string?> GetValueAsync(CancellationToken cancellationToken) => ValueTask.FromResult<string?>(Url);

    /// <inheritdoc />
    public string ValueExpression => $"{{{Resource.Name}.bindings.{EndpointName}.url}}";
}

/// <summary>Parts of an endpoint usable in expressions.</summary>
public enum EndpointProperty
{
    /// <summary><c>scheme://host:port</c>.</summary>
    Url,

    /// <summary>Host name.</summary>
    Host,

    /// <summary>Port the outside reaches.</summary>
    Port,

    /// <summary>Port the process listens on.</summary>
    TargetPort,

    /// <summary><c>host:port</c>.</summary>
    HostAndPort,

    /// <summary>URI scheme.</summary>
    Scheme,
}

/// <summary>One property of an endpoint inside a <see cref="ReferenceExpression"/>.</summary>
public sealed class EndpointReferenceExpression(EndpointReference endpoint, EndpointProperty property) : IValueProvider, IManifestExpressionProvider
{
    /// <summary>The endpoint.</summary>
    public EndpointReference Endpoint { get; } = endpoint;

    /// <summary>Which part of it.</summary>
    public EndpointProperty Property { get; } = property;

    /// <inheritdoc />
    public ValueTask<string?> GetValueAsync(CancellationToken cancellationToken) => ValueTask.FromResult<string?>(Property switch
    {
        EndpointProperty.Url => Endpoint.Url,
        EndpointProperty.Host => Endpoint.Host,
        EndpointProperty.Port or EndpointProperty.TargetPort => Endpoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        EndpointProperty.HostAndPort => $"{Endpoint.Host}:{Endpoint.Port}",
        EndpointProperty.Scheme => Endpoint.Annotation.UriScheme,
        _ => throw new ArgumentOutOfRangeException(nameof(Property)),
    });

    /// <inheritdoc />
    public string ValueExpression => Property switch
    {
        EndpointProperty.HostAndPort => $"{{{Endpoint.Resource.Name}.bindings.{Endpoint.EndpointName}.host}}:{{{Endpoint.Resource.Name}.bindings.{Endpoint.EndpointName}.port}}",
        _ => $"{{{Endpoint.Resource.Name}.bindings.{Endpoint.EndpointName}.{Property.ToString().ToLowerInvariant() switch { "targetport" => "targetPort", var p => p }}}}",
    };
}
