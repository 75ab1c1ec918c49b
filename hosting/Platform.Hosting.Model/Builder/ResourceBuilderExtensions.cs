using Microsoft.Extensions.Configuration;
using Platform.Hosting.ApplicationModel;

namespace Platform.Hosting;

/// <summary>Aspire's resource-builder extensions: adding resources and wiring them together.</summary>
public static class ResourceBuilderExtensions
{
    /// <summary>Port a project listens on inside its container (publish mode); .NET 8+ images default to 8080.</summary>
    public const int DefaultProjectTargetPort = 8080;

    /// <summary>Adds a .NET project known through a generated <c>Projects.X</c> class.</summary>
    public static IResourceBuilder<ProjectResource> AddProject<TProject>(this IDistributedApplicationBuilder builder, string name)
        where TProject : IProjectMetadata, new() =>
        builder.AddProject(name, new TProject());

    /// <summary>Adds a .NET project by the path of its project file (relative to the AppHost directory).</summary>
    public static IResourceBuilder<ProjectResource> AddProject(this IDistributedApplicationBuilder builder, string name, string projectPath) =>
        builder.AddProject(name, new ProjectPathMetadata(Path.GetFullPath(projectPath, builder.AppHostDirectory)));

    /// <summary>Adds a .NET project with an HTTP endpoint ("http") and Aspire's project environment.</summary>
    public static IResourceBuilder<ProjectResource> AddProject(this IDistributedApplicationBuilder builder, string name, IProjectMetadata metadata)
    {
        if (!File.Exists(metadata.ProjectPath))
        {
            throw new DistributedApplicationException($"Project '{name}': project file '{metadata.ProjectPath}' does not exist.");
        }

        return builder.AddResource(new ProjectResource(name))
            .WithAnnotation(new ProjectMetadataAnnotation(metadata))
            .WithEndpoint(new EndpointAnnotation("http", "http", targetPort: DefaultProjectTargetPort));
    }

    /// <summary>Adds a program started with a command line.</summary>
    public static IResourceBuilder<ExecutableResource> AddExecutable(
        this IDistributedApplicationBuilder builder, string name, string command, string workingDirectory, params object[] args)
    {
        var resource = new ExecutableResource(name, command, Path.GetFullPath(workingDirectory, builder.AppHostDirectory));
        var rb = builder.AddResource(resource);
        return args.Length == 0 ? rb : rb.WithArgs(args);
    }

    /// <summary>
    /// Adds a parameter whose value comes from configuration <c>Parameters:name</c>; a missing secret is
    /// generated (letters and digits, 22+ characters) and kept in the state directory.
    /// </summary>
    public static IResourceBuilder<ParameterResource> AddParameter(this IDistributedApplicationBuilder builder, string name, bool secret = false)
    {
        var generate = secret ? new GenerateParameterDefault() : null;
        var config = builder.Configuration;
        var store = new GeneratedParameterStore(builder.ExecutionContext.StateDirectory);
        var resource = new ParameterResource(name, () =>
            config[$"Parameters:{name}"] is { Length: > 0 } v
                ? v
                : generate is not null
                    ? store.GetOrGenerate(name, generate.MinLength)
                    : throw new DistributedApplicationException(
                        $"Parameter '{name}' has no value: set configuration 'Parameters:{name}' (environment Parameters__{name})."),
            secret, generate);
        return builder.AddResource(resource);
    }

    /// <summary>Adds a parameter with a fixed (non-secret) value.</summary>
    public static IResourceBuilder<ParameterResource> AddParameter(this IDistributedApplicationBuilder builder, string name, string value, bool secret = false)
    {
        var config = builder.Configuration;
        return builder.AddResource(new ParameterResource(name, () => config[$"Parameters:{name}"] ?? value, secret));
    }

    /// <summary>Adds a connection string read from configuration <c>ConnectionStrings:name</c>.</summary>
    public static IResourceBuilder<IResourceWithConnectionString> AddConnectionString(this IDistributedApplicationBuilder builder, string name)
    {
        var parameter = new ParameterResource($"{name}-connection", () => builder.Configuration.GetConnectionString(name)
            ?? throw new DistributedApplicationException($"Connection string '{name}' is missing: set ConnectionStrings:{name}."), secret: true);
        return builder.AddResource<IResourceWithConnectionString>(new ConnectionStringResource(name, ReferenceExpression.Create($"{parameter}")));
    }

    /// <summary>Sets an environment variable to a literal value.</summary>
    public static IResourceBuilder<T> WithEnvironment<T>(this IResourceBuilder<T> builder, string name, string value)
        where T : IResourceWithEnvironment =>
        builder.WithEnvironment(ctx => ctx.EnvironmentVariables[name] = value);

    /// <summary>Sets an environment variable to an expression.</summary>
    public static IResourceBuilder<T> WithEnvironment<T>(this IResourceBuilder<T> builder, string name, ReferenceExpression value)
        where T : IResourceWithEnvironment =>
        builder.WithEnvironment(ctx => ctx.EnvironmentVariables[name] = value);

    /// <summary>Sets an environment variable to an endpoint's URL.</summary>
    public static IResourceBuilder<T> WithEnvironment<T>(this IResourceBuilder<T> builder, string name, EndpointReference endpoint)
        where T : IResourceWithEnvironment =>
        builder.WithEnvironment(ctx => ctx.EnvironmentVariables[name] = endpoint);

    /// <summary>Sets an environment variable to a parameter's value (a secret stays a secret in manifests).</summary>
    public static IResourceBuilder<T> WithEnvironment<T>(this IResourceBuilder<T> builder, string name, IResourceBuilder<ParameterResource> parameter)
        where T : IResourceWithEnvironment =>
        builder.WithRelationship(parameter.Resource, "Reference")
            .WithEnvironment(ctx => ctx.EnvironmentVariables[name] = parameter.Resource);

    /// <summary>Adds environment variables computed when the resource starts (or is published).</summary>
    public static IResourceBuilder<T> WithEnvironment<T>(this IResourceBuilder<T> builder, Action<EnvironmentCallbackContext> callback)
        where T : IResourceWithEnvironment =>
        builder.WithAnnotation(new EnvironmentCallbackAnnotation(callback));

    /// <summary>Adds command-line arguments: strings, parameters or expressions.</summary>
    public static IResourceBuilder<T> WithArgs<T>(this IResourceBuilder<T> builder, params object[] args)
        where T : IResourceWithArgs =>
        builder.WithAnnotation(new CommandLineArgsCallbackAnnotation(list => list.AddRange(args)));

    /// <summary>
    /// Injects <c>ConnectionStrings__&lt;name&gt;</c> (Aspire's convention) and records the dependency.
    /// </summary>
    public static IResourceBuilder<T> WithReference<T>(this IResourceBuilder<T> builder,
        IResourceBuilder<IResourceWithConnectionString> source, string? connectionName = null)
        where T : IResourceWithEnvironment
    {
        var resource = source.Resource;
        var name = connectionName ?? resource.ConnectionStringName;
        return builder.WithRelationship(resource, "Reference")
            .WithEnvironment(ctx => ctx.EnvironmentVariables[$"ConnectionStrings__{name}"] = resource.ConnectionStringExpression);
    }

    /// <summary>
    /// Injects <c>services__&lt;name&gt;__&lt;endpoint&gt;__&lt;i&gt;</c> for every endpoint of the source (one per
    /// replica in run mode) so service discovery resolves <c>http://name</c>, and records the dependency.
    /// </summary>
    public static IResourceBuilder<T> WithReference<T>(this IResourceBuilder<T> builder, IResourceBuilder<IResourceWithServiceDiscovery> source)
        where T : IResourceWithEnvironment
    {
        var resource = source.Resource;
        return builder.WithRelationship(resource, "Reference").WithEnvironment(ctx =>
        {
            var replicas = ctx.ExecutionContext.IsRunMode ? resource.GetReplicaCount() : 1;
            foreach (var endpoint in resource.GetEndpoints())
            {
                for (var i = 0; i < replicas; i++)
                {
                    ctx.EnvironmentVariables[$"services__{resource.Name}__{endpoint.Name}__{i}"] =
                        new EndpointReference(resource, endpoint.Name, i);
                }

                ctx.EnvironmentVariables[EnvironmentVariableName($"{resource.Name}_{endpoint.Name}")] =
                    new EndpointReference(resource, endpoint.Name);
            }
        });
    }

    /// <summary>Injects one endpoint of another resource as <c>services__&lt;name&gt;__&lt;endpoint&gt;__0</c>.</summary>
    public static IResourceBuilder<T> WithReference<T>(this IResourceBuilder<T> builder, EndpointReference endpoint)
        where T : IResourceWithEnvironment =>
        builder.WithRelationship(endpoint.Resource, "Reference").WithEnvironment(ctx =>
            ctx.EnvironmentVariables[$"services__{endpoint.Resource.Name}__{endpoint.EndpointName}__0"] = endpoint);

    /// <summary>Records a relationship shown by the dashboard and used by publishers (network policies).</summary>
    public static IResourceBuilder<T> WithRelationship<T>(this IResourceBuilder<T> builder, IResource resource, string type)
        where T : IResource =>
        builder.Resource.Annotations.OfType<ResourceRelationshipAnnotation>().Any(r => r.Resource == resource && r.Type == type)
            ? builder
            : builder.WithAnnotation(new ResourceRelationshipAnnotation(resource, type));

    /// <summary>Declares an endpoint.</summary>
    public static IResourceBuilder<T> WithEndpoint<T>(this IResourceBuilder<T> builder, EndpointAnnotation endpoint)
        where T : IResourceWithEndpoints
    {
        if (builder.Resource.GetEndpoints().Any(e => e.Name == endpoint.Name))
        {
            throw new DistributedApplicationException($"Resource '{builder.Resource.Name}' already has an endpoint named '{endpoint.Name}'.");
        }

        return builder.WithAnnotation(endpoint);
    }

    /// <summary>Declares an HTTP endpoint, or changes the default one of a project.</summary>
    public static IResourceBuilder<T> WithHttpEndpoint<T>(this IResourceBuilder<T> builder,
        int? port = null, int? targetPort = null, string? name = null, string? env = null)
        where T : IResourceWithEndpoints
    {
        var endpointName = name ?? "http";
        var existing = builder.Resource.GetEndpoints().FirstOrDefault(e => e.Name == endpointName);
        if (existing is not null)
        {
            existing.Port = port ?? existing.Port;
            existing.TargetPort = targetPort ?? existing.TargetPort;
            return builder;
        }

        return builder.WithEndpoint(new EndpointAnnotation(endpointName, "http", port, targetPort, environmentVariable: env));
    }

    /// <summary>Marks every HTTP endpoint as reachable from outside the application.</summary>
    public static IResourceBuilder<T> WithExternalHttpEndpoints<T>(this IResourceBuilder<T> builder)
        where T : IResourceWithEndpoints
    {
        foreach (var endpoint in builder.Resource.GetEndpoints().Where(e => e.UriScheme is "http" or "https"))
        {
            endpoint.IsExternal = true;
        }

        return builder;
    }

    /// <summary>Runs several replicas of a project, each with its own port and instance id.</summary>
    public static IResourceBuilder<ProjectResource> WithReplicas(this IResourceBuilder<ProjectResource> builder, int replicas)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(replicas, 1);
        builder.Resource.Annotations.RemoveAll(a => a is ReplicaAnnotation);
        return builder.WithAnnotation(new ReplicaAnnotation(replicas));
    }

    /// <summary>Starts the resource only after <paramref name="dependency"/> is running and healthy.</summary>
    public static IResourceBuilder<T> WaitFor<T>(this IResourceBuilder<T> builder, IResourceBuilder<IResource> dependency)
        where T : IResourceWithWaitSupport =>
        builder.WithRelationship(dependency.Resource, "WaitFor")
            .WithAnnotation(new WaitAnnotation(dependency.Resource, WaitType.WaitUntilHealthy));

    /// <summary>Starts the resource only after <paramref name="dependency"/> has exited with code 0.</summary>
    public static IResourceBuilder<T> WaitForCompletion<T>(this IResourceBuilder<T> builder, IResourceBuilder<IResource> dependency)
        where T : IResourceWithWaitSupport =>
        builder.WithRelationship(dependency.Resource, "WaitFor")
            .WithAnnotation(new WaitAnnotation(dependency.Resource, WaitType.WaitUntilCompleted));

    /// <summary>Probes <paramref name="path"/> on the HTTP endpoint for health (readiness in Kubernetes).</summary>
    public static IResourceBuilder<T> WithHttpHealthCheck<T>(this IResourceBuilder<T> builder,
        string path = "/health", int statusCode = 200, string endpointName = "http")
        where T : IResourceWithEndpoints =>
        builder.WithAnnotation(new HttpHealthCheckAnnotation(path, endpointName, statusCode));

    /// <summary>Probes <paramref name="path"/> for liveness (Kubernetes livenessProbe).</summary>
    public static IResourceBuilder<T> WithLivenessProbe<T>(this IResourceBuilder<T> builder, string path = "/alive", string endpointName = "http")
        where T : IResourceWithEndpoints =>
        builder.WithAnnotation(new LivenessProbeAnnotation(path, endpointName));

    /// <summary>Keeps the server's data across restarts (<c>.platform/&lt;resource&gt;/</c>; a PVC in Kubernetes).</summary>
    public static IResourceBuilder<T> WithDataVolume<T>(this IResourceBuilder<T> builder, string? name, string targetPath)
        where T : ContainerResource
    {
        builder.Resource.Annotations.RemoveAll(a => a is DataVolumeAnnotation);
        return builder.WithAnnotation(new DataVolumeAnnotation(name ?? $"{builder.Resource.Name}-data", targetPath));
    }

    /// <summary>Sets the image publish mode deploys for a resource.</summary>
    public static IResourceBuilder<T> WithImage<T>(this IResourceBuilder<T> builder, string image, string tag, string? registry = null)
        where T : IResource
    {
        builder.Resource.Annotations.RemoveAll(a => a is ContainerImageAnnotation);
        return builder.WithAnnotation(new ContainerImageAnnotation(image, tag, registry));
    }

    /// <summary>Throws when <paramref name="name"/> is taken, before a resource adds its helper parameters.</summary>
    public static void EnsureNameAvailable(this IDistributedApplicationBuilder builder, string name)
    {
        if (builder.Resources.Find(name) is not null)
        {
            throw new DistributedApplicationException($"Cannot add resource '{name}': a resource with that name already exists.");
        }
    }

    /// <summary>Aspire's <c>NAME_ENDPOINT</c> form: upper case, '-' becomes '_'.</summary>
    public static string EnvironmentVariableName(string name) => name.Replace('-', '_').ToUpperInvariant();
}
