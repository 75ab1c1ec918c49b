namespace Platform.Hosting.ApplicationModel;

/// <summary>A named thing the AppHost composes: a project, an executable, a server or a parameter.</summary>
public interface IResource
{
    /// <summary>Unique name within the application (lowercase letters, digits and '-').</summary>
    string Name { get; }

    /// <summary>Behaviour attached by builder extensions (endpoints, environment, waits, health checks...).</summary>
    ResourceAnnotationCollection Annotations { get; }
}

/// <summary>Marker for data attached to a resource.</summary>
public interface IResourceAnnotation;

/// <summary>A resource that accepts environment variables.</summary>
public interface IResourceWithEnvironment : IResource;

/// <summary>A resource that accepts command-line arguments.</summary>
public interface IResourceWithArgs : IResource;

/// <summary>A resource that exposes network endpoints.</summary>
public interface IResourceWithEndpoints : IResource;

/// <summary>A resource whose endpoints are published to dependants as <c>services__name__scheme__i</c>.</summary>
public interface IResourceWithServiceDiscovery : IResourceWithEndpoints;

/// <summary>A resource that can wait for others before it starts.</summary>
public interface IResourceWithWaitSupport : IResource;

/// <summary>A resource owned by another one (a database in a server).</summary>
public interface IResourceWithParent : IResource
{
    /// <summary>The owning resource.</summary>
    IResource Parent { get; }
}

/// <summary>A resource that dependants reach through a connection string.</summary>
public interface IResourceWithConnectionString : IResource, IValueProvider, IManifestExpressionProvider
{
    /// <summary>The connection string, as an expression that can be evaluated (run mode) or rendered (publish mode).</summary>
    ReferenceExpression ConnectionStringExpression { get; }

    /// <summary>Name under <c>ConnectionStrings__</c>; the resource name unless overridden.</summary>
    string ConnectionStringName => Name;

    ValueTask<string?> IValueProvider.GetValueAsync(CancellationToken cancellationToken) =>
        ConnectionStringExpression.GetValueAsync(cancellationToken);

    string IManifestExpressionProvider.ValueExpression => $"{{{Name}.connectionString}}";
}

/// <summary>Base class for resources: a name and an annotation list.</summary>
public abstract class Resource : IResource
{
    /// <summary>Creates a resource, validating its name.</summary>
    protected Resource(string name)
    {
        ResourceNames.Validate(name);
        Name = name;
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    public ResourceAnnotationCollection Annotations { get; } = new();

    /// <inheritdoc />
    public override string ToString() => $"{GetType().Name}({Name})";
}

/// <summary>Ordered list of annotations.</summary>
public sealed class ResourceAnnotationCollection : List<IResourceAnnotation>;

/// <summary>Resource-name rules (Aspire's: they become DNS labels in Kubernetes).</summary>
public static class ResourceNames
{
    /// <summary>Throws when <paramref name="name"/> is not a valid resource name.</summary>
    public static void Validate(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (name.Length > 63)
        {
            throw new ArgumentException($"Resource name '{name}' is longer than 63 characters.", nameof(name));
        }

        if (!char.IsAsciiLetter(name[0]) || name[^1] == '-' ||
            name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c == '-')) || name.Contains("--", StringComparison.Ordinal))
        {
            throw new ArgumentException(
                $"Resource name '{name}' is invalid: use ASCII letters, digits and single '-', starting with a letter.", nameof(name));
        }
    }
}

/// <summary>Extension helpers to query annotations.</summary>
public static class ResourceExtensions
{
    /// <summary>All annotations of type <typeparamref name="T"/>.</summary>
    public static IEnumerable<T> OfAnnotation<T>(this IResource resource) where T : IResourceAnnotation =>
        resource.Annotations.OfType<T>();

    /// <summary>The last annotation of type <typeparamref name="T"/>, if any.</summary>
    public static bool TryGetLastAnnotation<T>(this IResource resource, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out T? annotation)
        where T : class, IResourceAnnotation
    {
        annotation = resource.Annotations.OfType<T>().LastOrDefault();
        return annotation is not null;
    }

    /// <summary>Number of replicas (1 unless <c>WithReplicas</c> was used).</summary>
    public static int GetReplicaCount(this IResource resource) =>
        resource.TryGetLastAnnotation<ReplicaAnnotation>(out var r) ? r.Replicas : 1;

    /// <summary>The endpoints declared on a resource.</summary>
    public static IReadOnlyList<EndpointAnnotation> GetEndpoints(this IResource resource) =>
        resource.Annotations.OfType<EndpointAnnotation>().ToList();

    /// <summary>A reference to the named endpoint of a resource.</summary>
    public static EndpointReference GetEndpoint(this IResourceWithEndpoints resource, string endpointName) =>
        new(resource, endpointName);

    /// <summary>The resource's type as shown by the dashboard and the manifest ("Project", "Postgres"...).</summary>
    public static string GetResourceType(this IResource resource) => resource switch
    {
        ProjectResource => "Project",
        ExecutableResource => "Executable",
        ParameterResource => "Parameter",
        ContainerResource c => c.TypeDisplayName,
        IResourceWithParent p => p.GetType().Name.Replace("Resource", string.Empty, StringComparison.Ordinal),
        _ => resource.GetType().Name.Replace("Resource", string.Empty, StringComparison.Ordinal),
    };
}
