using System.Globalization;
using Platform.Hosting.ApplicationModel;

namespace Platform.Hosting.Publishing.Kubernetes;

/// <summary>A value rendered for a pod: its text and the secret parameters it expands (as <c>$(VAR)</c>).</summary>
/// <param name="Text">The value; secrets appear only as <c>$(VAR)</c> references.</param>
/// <param name="Secrets">Secret parameters referenced, in first-use order.</param>
/// <param name="Endpoints">Endpoints of other resources the value points at (network edges).</param>
public sealed record RenderedValue(string Text, IReadOnlyList<ParameterResource> Secrets, IReadOnlyList<EndpointEdge> Endpoints);

/// <summary>An endpoint of a resource that a value points at.</summary>
/// <param name="Resource">The resource that owns the endpoint.</param>
/// <param name="Endpoint">The endpoint.</param>
public sealed record EndpointEdge(IResource Resource, EndpointAnnotation Endpoint);

/// <summary>
/// Renders model values to in-cluster values: an endpoint becomes <c>scheme://service:port</c>
/// (Services listen on the target port), a secret parameter becomes <c>$(VAR)</c> where VAR is
/// filled from a Secret by <c>secretKeyRef</c>, so no secret value is ever written.
/// </summary>
public static class KubernetesValueRenderer
{
    /// <summary>The variable a secret parameter is expanded from inside a pod (e.g. <c>POSTGRES_PASSWORD</c>).</summary>
    public static string SecretVariable(ParameterResource parameter) => ResourceBuilderExtensions.EnvironmentVariableName(parameter.Name);

    /// <summary>
    /// Renders <paramref name="value"/>. With <paramref name="forExpansion"/> (env values and args, where
    /// Kubernetes expands <c>$(VAR)</c>) a literal <c>$(</c> is escaped; ConfigMap values are taken verbatim.
    /// </summary>
    public static RenderedValue Render(object value, bool forExpansion)
    {
        var secrets = new List<ParameterResource>();
        var endpoints = new List<EndpointEdge>();
        var text = new Renderer(forExpansion).RenderCore(value, secrets, endpoints);
        return new RenderedValue(text, secrets, endpoints);
    }

    private sealed class Renderer(bool forExpansion)
    {
        public string RenderCore(object value, List<ParameterResource> secrets, List<EndpointEdge> endpoints)
        {
            switch (value)
            {
                case string s:
                    return EscapeExpansion(s);
                case ParameterResource { Secret: true } p:
                    if (!secrets.Contains(p))
                    {
                        secrets.Add(p);
                    }

                    return $"$({SecretVariable(p)})";
                case ParameterResource p:
                    return EscapeExpansion(p.Value);
                case ReferenceExpression e:
                    // Literal text and holes are rendered separately so that only literal "$(" is escaped.
                    var parts = e.ValueProviders.Select(v => RenderCore(v, secrets, endpoints)).ToList();
                    var format = e.Render(v => $"\u0001{e.ValueProviders.ToList().IndexOf(v)}\u0001");
                    var escaped = EscapeExpansion(format);
                    for (var i = 0; i < parts.Count; i++)
                    {
                        escaped = escaped.Replace($"\u0001{i}\u0001", parts[i], StringComparison.Ordinal);
                    }

                    return escaped;
                case IResourceWithConnectionString c:
                    return RenderCore(c.ConnectionStringExpression, secrets, endpoints);
                case EndpointReference r:
                    Track(r, endpoints);
                    return $"{r.Annotation.UriScheme}://{r.Resource.Name}:{TargetPort(r)}";
                case EndpointReferenceExpression x:
                    Track(x.Endpoint, endpoints);
                    var port = TargetPort(x.Endpoint).ToString(CultureInfo.InvariantCulture);
                    return x.Property switch
                    {
                        EndpointProperty.Url => $"{x.Endpoint.Annotation.UriScheme}://{x.Endpoint.Resource.Name}:{port}",
                        EndpointProperty.Host => x.Endpoint.Resource.Name,
                        EndpointProperty.Port or EndpointProperty.TargetPort => port,
                        EndpointProperty.HostAndPort => $"{x.Endpoint.Resource.Name}:{port}",
                        EndpointProperty.Scheme => x.Endpoint.Annotation.UriScheme,
                        _ => throw new ArgumentOutOfRangeException(nameof(value)),
                    };
                case IResourceBuilder<IResource> b:
                    return RenderCore(b.Resource, secrets, endpoints);
                case IFormattable f:
                    return f.ToString(null, CultureInfo.InvariantCulture);
                default:
                    throw new DistributedApplicationException($"'{value}' ({value.GetType().Name}) has no Kubernetes representation.");
            }
        }

        // Kubernetes expands $(VAR) in env values and args; a literal "$(" must be written "$$(" there.
        private string EscapeExpansion(string s) => forExpansion ? s.Replace("$(", "$$(", StringComparison.Ordinal) : s;

        private static void Track(EndpointReference r, List<EndpointEdge> endpoints)
        {
            if (!endpoints.Any(e => e.Endpoint == r.Annotation))
            {
                endpoints.Add(new EndpointEdge(r.Resource, r.Annotation));
            }
        }
    }

    /// <summary>The port a resource's Service exposes for an endpoint: its target port.</summary>
    public static int TargetPort(EndpointReference reference) => TargetPort(reference.Resource, reference.Annotation);

    /// <summary>The port a resource's Service exposes for an endpoint: its target port.</summary>
    public static int TargetPort(IResource resource, EndpointAnnotation endpoint) =>
        endpoint.TargetPort ?? endpoint.Port
        ?? throw new DistributedApplicationException($"Endpoint '{endpoint.Name}' of '{resource.Name}' has no target port to publish.");
}
