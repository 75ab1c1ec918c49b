using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Platform.Hosting.ApplicationModel;

namespace Platform.Hosting;

/// <summary>Composes an application's resources (Aspire's <c>IDistributedApplicationBuilder</c>).</summary>
public interface IDistributedApplicationBuilder
{
    /// <summary>AppHost configuration: command line, environment, <c>Parameters:*</c>, <c>ConnectionStrings:*</c>.</summary>
    ConfigurationManager Configuration { get; }

    /// <summary>The AppHost's environment.</summary>
    IHostEnvironment Environment { get; }

    /// <summary>Services of the AppHost itself.</summary>
    IServiceCollection Services { get; }

    /// <summary>Run or publish.</summary>
    DistributedApplicationExecutionContext ExecutionContext { get; }

    /// <summary>The resources added so far.</summary>
    IResourceCollection Resources { get; }

    /// <summary>Directory of the AppHost project (paths in the model are relative to it).</summary>
    string AppHostDirectory { get; }

    /// <summary>Adds a resource; its name must be unique.</summary>
    IResourceBuilder<T> AddResource<T>(T resource) where T : IResource;

    /// <summary>A builder for a resource that is already in the model.</summary>
    IResourceBuilder<T> CreateResourceBuilder<T>(T resource) where T : IResource;
}

/// <summary>Fluent access to one resource (Aspire's <c>IResourceBuilder&lt;T&gt;</c>).</summary>
public interface IResourceBuilder<out T> where T : IResource
{
    /// <summary>The application builder.</summary>
    IDistributedApplicationBuilder ApplicationBuilder { get; }

    /// <summary>The resource.</summary>
    T Resource { get; }

    /// <summary>Attaches an annotation.</summary>
    IResourceBuilder<T> WithAnnotation<TAnnotation>(TAnnotation annotation) where TAnnotation : IResourceAnnotation;
}

/// <summary>The resources of an application.</summary>
public interface IResourceCollection : IEnumerable<IResource>
{
    /// <summary>Adds a resource.</summary>
    void Add(IResource resource);

    /// <summary>Finds a resource by name.</summary>
    IResource? Find(string name);
}

/// <summary>Whether the AppHost runs the application or publishes it.</summary>
public enum DistributedApplicationOperation
{
    /// <summary>Start everything on this machine.</summary>
    Run,

    /// <summary>Write deployment artefacts.</summary>
    Publish,
}

/// <summary>What the AppHost is doing, and where it keeps its state.</summary>
/// <param name="operation">Run or publish.</param>
/// <param name="stateDirectory">Directory for persistent run-mode state (<c>.platform/</c>).</param>
/// <param name="publisherName">The publisher, in publish mode ("manifest", "kubernetes").</param>
public sealed class DistributedApplicationExecutionContext(
    DistributedApplicationOperation operation, string stateDirectory, string? publisherName = null)
{
    /// <summary>Run or publish.</summary>
    public DistributedApplicationOperation Operation { get; } = operation;

    /// <summary>True when resources are started on this machine.</summary>
    public bool IsRunMode => Operation == DistributedApplicationOperation.Run;

    /// <summary>True when deployment artefacts are written.</summary>
    public bool IsPublishMode => Operation == DistributedApplicationOperation.Publish;

    /// <summary>The publisher name in publish mode.</summary>
    public string? PublisherName { get; } = publisherName;

    /// <summary>Directory for persistent run-mode state (data volumes, generated parameters).</summary>
    public string StateDirectory { get; } = stateDirectory;
}

/// <summary>Default <see cref="IResourceBuilder{T}"/>.</summary>
public sealed class ResourceBuilder<T>(IDistributedApplicationBuilder applicationBuilder, T resource) : IResourceBuilder<T>
    where T : IResource
{
    /// <inheritdoc />
    public IDistributedApplicationBuilder ApplicationBuilder { get; } = applicationBuilder;

    /// <inheritdoc />
    public T Resource { get; } = resource;

    /// <inheritdoc />
    public IResourceBuilder<T> WithAnnotation<TAnnotation>(TAnnotation annotation) where TAnnotation : IResourceAnnotation
    {
        Resource.Annotations.Add(annotation);
        return this;
    }
}

/// <summary>Default <see cref="IResourceCollection"/>: names are unique, case-insensitively.</summary>
public sealed class ResourceCollection : IResourceCollection
{
    private readonly List<IResource> _resources = [];

    /// <inheritdoc />
    public void Add(IResource resource)
    {
        if (Find(resource.Name) is not null)
        {
            throw new DistributedApplicationException($"Cannot add resource '{resource.Name}': a resource with that name already exists.");
        }

        _resources.Add(resource);
    }

    /// <inheritdoc />
    public IResource? Find(string name) =>
        _resources.FirstOrDefault(r => string.Equals(r.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <inheritdoc />
    public IEnumerator<IResource> GetEnumerator() => _resources.GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>An error in the application model or its orchestration.</summary>
public class DistributedApplicationException(string message, Exception? inner = null) : Exception(message, inner);
