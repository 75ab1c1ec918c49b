using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Platform.Hosting.ApplicationModel;

namespace Platform.Hosting.Orchestration;

/// <summary>Evaluates the model's environment and arguments for run mode.</summary>
public static class RunEnvironment
{
    /// <summary>
    /// Environment of one replica: the model's variables (evaluated), plus Aspire's project variables
    /// (<c>ASPNETCORE_URLS</c>, <c>OTEL_*</c>). Returns values and which names hold secrets.
    /// </summary>
    public static async Task<(Dictionary<string, string> Values, HashSet<string> Secrets)> ResolveAsync(
        IResource resource, int replica, DistributedApplicationExecutionContext executionContext, OrchestratorOptions options,
        CancellationToken cancellationToken)
    {
        var context = new EnvironmentCallbackContext(executionContext);
        if (resource is ProjectResource)
        {
            AddProjectDefaults(resource, replica, options, context.EnvironmentVariables);
        }

        foreach (var endpoint in resource.GetEndpoints().Where(e => e.EnvironmentVariable is not null))
        {
            context.EnvironmentVariables[endpoint.EnvironmentVariable!] =
                endpoint.GetAllocated(replica)!.Port.ToString(CultureInfo.InvariantCulture);
        }

        foreach (var callback in resource.OfAnnotation<EnvironmentCallbackAnnotation>())
        {
            callback.Callback(context);
        }

        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var secrets = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, value) in context.EnvironmentVariables)
        {
            values[name] = await EvaluateAsync(value, cancellationToken).ConfigureAwait(false);
            if (IsSecret(value))
            {
                secrets.Add(name);
            }
        }

        return (values, secrets);
    }

    /// <summary>The model's command-line arguments, evaluated.</summary>
    public static async Task<List<string>> ResolveArgsAsync(IResource resource, CancellationToken cancellationToken)
    {
        var raw = new List<object>();
        foreach (var callback in resource.OfAnnotation<CommandLineArgsCallbackAnnotation>())
        {
            callback.Callback(raw);
        }

        var args = new List<string>(raw.Count);
        foreach (var a in raw)
        {
            args.Add(await EvaluateAsync(a, cancellationToken).ConfigureAwait(false));
        }

        return args;
    }

    /// <summary>Evaluates a string, value provider or expression.</summary>
    public static async ValueTask<string> EvaluateAsync(object value, CancellationToken cancellationToken) => value switch
    {
        string s => s,
        IValueProvider p => await p.GetValueAsync(cancellationToken).ConfigureAwait(false) ?? string.Empty,
        IResourceBuilder<IResource> { Resource: IValueProvider p } => await p.GetValueAsync(cancellationToken).ConfigureAwait(false) ?? string.Empty,
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? string.Empty,
    };

    /// <summary>True when the value is, or contains, a secret parameter.</summary>
    public static bool IsSecret(object value) => value switch
    {
        ParameterResource p => p.Secret,
        ReferenceExpression e => e.ValueProviders.Any(IsSecret),
        IResourceWithConnectionString c => IsSecret(c.ConnectionStringExpression),
        IResourceBuilder<IResource> b => IsSecret(b.Resource),
        _ => false,
    };

    /// <summary>Replica instance id: <c>&lt;name&gt;-&lt;index&gt;</c>, stable across restarts.</summary>
    public static string InstanceId(IResource resource, int replica) => $"{resource.Name}-{replica}";

    private static void AddProjectDefaults(IResource resource, int replica, OrchestratorOptions options, Dictionary<string, object> env)
    {
        var urls = resource.GetEndpoints()
            .Where(e => e.UriScheme is "http" or "https")
            .Select(e => e.GetAllocated(replica)!.Url);
        env["ASPNETCORE_URLS"] = string.Join(';', urls);
        env["ASPNETCORE_ENVIRONMENT"] = options.EnvironmentName;
        env["DOTNET_ENVIRONMENT"] = options.EnvironmentName;
        env["OTEL_SERVICE_NAME"] = resource.Name;
        env["OTEL_RESOURCE_ATTRIBUTES"] = $"service.instance.id={InstanceId(resource, replica)}";
        if (options.OtlpEndpoint is not null)
        {
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = options.OtlpEndpoint;
            env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf";
            if (options.OtlpHeaders is not null)
            {
                env["OTEL_EXPORTER_OTLP_HEADERS"] = options.OtlpHeaders;
            }

            // Aspire's development defaults: export every second so the dashboard is live.
            env["OTEL_BSP_SCHEDULE_DELAY"] = "1000";
            env["OTEL_BLRP_SCHEDULE_DELAY"] = "1000";
            env["OTEL_METRIC_EXPORT_INTERVAL"] = "1000";
        }

        env["DOTNET_NOLOGO"] = "1";
        env["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
    }
}

/// <summary>Allocates loopback ports for every endpoint and replica before anything starts.</summary>
public static class PortAllocator
{
    /// <summary>Sets <see cref="EndpointAnnotation.SetAllocated"/> for all endpoints of all resources.</summary>
    public static void AllocateAll(IEnumerable<IResource> resources, bool randomizePorts)
    {
        var held = new List<TcpListener>();
        try
        {
            foreach (var resource in resources)
            {
                var replicas = resource.GetReplicaCount();
                foreach (var endpoint in resource.GetEndpoints())
                {
                    for (var i = 0; i < replicas; i++)
                    {
                        int port;
                        if (endpoint.Port is { } fixedPort && !randomizePorts && replicas == 1)
                        {
                            port = fixedPort;
                        }
                        else
                        {
                            // Hold each listener until all are allocated so no port is handed out twice.
                            var listener = new TcpListener(IPAddress.Loopback, 0);
                            listener.Start();
                            held.Add(listener);
                            port = ((IPEndPoint)listener.LocalEndpoint).Port;
                        }

                        endpoint.SetAllocated(i, new AllocatedEndpoint(endpoint.UriScheme, "127.0.0.1", port));
                    }
                }
            }
        }
        finally
        {
            foreach (var l in held)
            {
                l.Stop();
            }
        }
    }
}
