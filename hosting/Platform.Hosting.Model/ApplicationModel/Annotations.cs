namespace Platform.Hosting.ApplicationModel;

/// <summary>A network endpoint of a resource.</summary>
/// <param name="name">Endpoint name ("http", "tcp"...); unique per resource.</param>
/// <param name="uriScheme">URI scheme ("http", "tcp", "redis").</param>
/// <param name="port">Fixed host port in run mode; null allocates a free one.</param>
/// <param name="targetPort">Port the process listens on in a container/pod (publish mode).</param>
/// <param name="isExternal">Exposed outside the application (ingress in Kubernetes).</param>
/// <param name="environmentVariable">Variable through which the process learns its port, if any.</param>
/// <param name="transport">"http", "http2" or "tcp".</param>
public sealed class EndpointAnnotation(
    string name,
    string uriScheme,
    int? port = null,
    int? targetPort = null,
    bool isExternal = false,
    string? environmentVariable = null,
    string transport = "http") : IResourceAnnotation
{
    private readonly Lock _gate = new();
    private readonly Dictionary<int, AllocatedEndpoint> _allocated = [];

    /// <summary>Endpoint name ("http", "tcp"...); unique per resource.</summary>
    public string Name { get; } = name;

    /// <summary>URI scheme ("http", "tcp", "redis").</summary>
    public string UriScheme { get; } = uriScheme;

    /// <summary>Fixed host port in run mode; null allocates a free one.</summary>
    public int? Port { get; set; } = port;

    /// <summary>Port the process listens on in a container/pod (publish mode).</summary>
    public int? TargetPort { get; set; } = targetPort;

    /// <summary>Exposed outside the application (ingress in Kubernetes).</summary>
    public bool IsExternal { get; set; } = isExternal;

    /// <summary>Variable through which the process learns its port, if any.</summary>
    public string? EnvironmentVariable { get; } = environmentVariable;

    /// <summary>"http", "http2" or "tcp".</summary>
    public string Transport { get; } = transport;

    /// <summary>Network protocol (always TCP here).</summary>
    public string Protocol => "tcp";

    /// <summary>Where replica <paramref name="replica"/> listens (run mode); set by the orchestrator.</summary>
    public AllocatedEndpoint? GetAllocated(int replica = 0)
    {
        lock (_gate)
        {
            return _allocated.GetValueOrDefault(replica);
        }
    }

    /// <summary>Records where replica <paramref name="replica"/> listens.</summary>
    public void SetAllocated(int replica, AllocatedEndpoint endpoint)
    {
        lock (_gate)
        {
            _allocated[replica] = endpoint;
        }
    }

    /// <summary>All allocations, by replica index.</summary>
    public IReadOnlyList<AllocatedEndpoint> AllAllocated()
    {
        lock (_gate)
        {
            return _allocated.OrderBy(kv => kv.Key).Select(kv => kv.Value).ToList();
        }
    }
}

/// <summary>An address a process listens on in run mode.</summary>
public sealed record AllocatedEndpoint(string UriScheme, string Host, int Port)
{
    /// <summary>The endpoint as a URL, e.g. <c>http://127.0.0.1:5123</c>.</summary>
    public string Url => $"{UriScheme}://{Host}:{Port}";
}

/// <summary>Adds environment variables when the resource starts; evaluated per mode.</summary>
public sealed record EnvironmentCallbackAnnotation(Action<EnvironmentCallbackContext> Callback) : IResourceAnnotation;

/// <summary>Adds command-line arguments.</summary>
public sealed record CommandLineArgsCallbackAnnotation(Action<List<object>> Callback) : IResourceAnnotation;

/// <summary>What an environment callback writes into: names to values (strings or expressions).</summary>
public sealed class EnvironmentCallbackContext(DistributedApplicationExecutionContext executionContext)
{
    /// <summary>Run or publish.</summary>
    public DistributedApplicationExecutionContext ExecutionContext { get; } = executionContext;

    /// <summary>Variables: values are <see cref="string"/>, <see cref="IValueProvider"/> or <see cref="ReferenceExpression"/>.</summary>
    public Dictionary<string, object> EnvironmentVariables { get; } = new(StringComparer.Ordinal);
}

/// <summary>The resource depends on another one (recorded by <c>WithReference</c>).</summary>
public sealed record ResourceRelationshipAnnotation(IResource Resource, string Type) : IResourceAnnotation;

/// <summary>How a resource waits for another before it starts.</summary>
public enum WaitType
{
    /// <summary>Until the dependency is Running and, if it has health checks, Healthy.</summary>
    WaitUntilHealthy,

    /// <summary>Until the dependency has exited successfully.</summary>
    WaitUntilCompleted,
}

/// <summary>The resource starts only after <paramref name="Resource"/> reaches the wait condition.</summary>
public sealed record WaitAnnotation(IResource Resource, WaitType WaitType) : IResourceAnnotation;

/// <summary>The number of replicas of a project.</summary>
public sealed record ReplicaAnnotation(int Replicas) : IResourceAnnotation;

/// <summary>An HTTP health probe of a resource.</summary>
public sealed record HttpHealthCheckAnnotation(string Path, string EndpointName, int ExpectedStatusCode = 200) : IResourceAnnotation;

/// <summary>Liveness probe path used by publishers (Kubernetes livenessProbe).</summary>
public sealed record LivenessProbeAnnotation(string Path, string EndpointName) : IResourceAnnotation;

/// <summary>Data outlives the application: kept under <c>.platform/&lt;resource&gt;/</c> (run mode) or a PVC (publish mode).</summary>
public sealed record DataVolumeAnnotation(string Name, string TargetPath) : IResourceAnnotation;

/// <summary>The image Kubernetes runs for a resource (publish mode).</summary>
public sealed record ContainerImageAnnotation(string Image, string Tag, string? Registry = null) : IResourceAnnotation
{
    /// <summary>The image reference <c>registry/image:tag</c>.</summary>
    public string Reference => Registry is null ? $"{Image}:{Tag}" : $"{Registry}/{Image}:{Tag}";
}

/// <summary>Identifies the project behind a <see cref="ProjectResource"/>.</summary>
public sealed record ProjectMetadataAnnotation(IProjectMetadata Metadata) : IResourceAnnotation;

/// <summary>What Aspire's generated <c>Projects.X</c> classes provide.</summary>
public interface IProjectMetadata
{
    /// <summary>Full path of the project file.</summary>
    string ProjectPath { get; }

    /// <summary>Full path of the built assembly, when known at build time.</summary>
    string? TargetPath => null;
}

/// <summary>Project metadata for a project added by path.</summary>
public sealed record ProjectPathMetadata(string ProjectPath, string? TargetPath = null) : IProjectMetadata;

/// <summary>The resource is shown to users but marked as infrastructure (servers, parameters).</summary>
public sealed record ResourceIconAnnotation(string Icon) : IResourceAnnotation;

/// <summary>Makes a connection-string resource's value available under a different name.</summary>
public sealed record ConnectionStringRedirectAnnotation(IResourceWithConnectionString Target) : IResourceAnnotation;
