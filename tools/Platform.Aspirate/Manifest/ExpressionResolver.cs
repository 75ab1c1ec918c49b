using System.Globalization;
using System.Text.RegularExpressions;

namespace Platform.Aspirate.Manifest;

/// <summary>A piece of a resolved value: literal text or a secret's value.</summary>
public abstract record ValuePart;

/// <summary>Literal text.</summary>
/// <param name="Text">The text.</param>
public sealed record LiteralPart(string Text) : ValuePart;

/// <summary>The value of a secret, which only the pod ever sees.</summary>
/// <param name="Secret">Where the value lives.</param>
public sealed record SecretPart(SecretSource Secret) : ValuePart;

/// <summary>
/// A Kubernetes Secret the output reads (key <c>value</c>), created by an ExternalSecret from the parameter's entry in the
/// secret store, optionally passed through a filter (an <c>annotated.string</c>).
/// </summary>
/// <param name="Name">Name of the Secret (and of the ExternalSecret): the parameter's, or the annotated string's.</param>
/// <param name="Parameter">The secret parameter whose store entry holds the value.</param>
/// <param name="Filter">The filter applied to the value (<c>uri</c>), or null.</param>
public sealed record SecretSource(string Name, string Parameter, string? Filter)
{
    /// <summary>The variable a pod expands the value from (<c>$(POSTGRES_PASSWORD)</c>), named as Aspire names them.</summary>
    public string Variable => ExpressionResolver.EnvironmentName(Name);
}

/// <summary>An endpoint of a workload that a value points at: a network edge.</summary>
/// <param name="Resource">The workload that owns the endpoint.</param>
/// <param name="Binding">The endpoint.</param>
public sealed record EndpointUse(WorkloadResource Resource, Binding Binding);

/// <summary>A manifest string with every expression resolved for the cluster.</summary>
/// <param name="Parts">Literal text and secrets, in order.</param>
/// <param name="Endpoints">Endpoints the value points at, in first-use order.</param>
public sealed record ResolvedValue(IReadOnlyList<ValuePart> Parts, IReadOnlyList<EndpointUse> Endpoints)
{
    /// <summary>Secrets the value contains, in first-use order.</summary>
    public IReadOnlyList<SecretSource> Secrets => Parts.OfType<SecretPart>().Select(p => p.Secret).Distinct().ToList();

    /// <summary>The secret, when the value is exactly one secret and nothing else.</summary>
    public SecretSource? WholeSecret => Parts is [SecretPart s] ? s.Secret : null;

    /// <summary>The value as plain text; only for values without secrets.</summary>
    public string Literal => Secrets.Count == 0
        ? string.Concat(Parts.Cast<LiteralPart>().Select(p => p.Text))
        : throw new InvalidOperationException("A value with secrets has no literal form.");

    /// <summary>
    /// The value for an env <c>value</c> or an argument, where Kubernetes expands <c>$(VAR)</c>: secrets become
    /// <c>$(VAR)</c> and a literal <c>$(</c> is escaped as <c>$$(</c>.
    /// </summary>
    public string ForExpansion => string.Concat(Parts.Select(p => p switch
    {
        LiteralPart l => l.Text.Replace("$(", "$$(", StringComparison.Ordinal),
        SecretPart s => $"$({s.Secret.Variable})",
        _ => throw new InvalidOperationException(),
    }));
}

/// <summary>
/// Resolves manifest expressions (<c>{postgres.connectionString}</c>, <c>{api.bindings.http.url}</c>,
/// <c>{key.value}</c>...) to what they mean inside the cluster: a workload's host is its Service, its port the Service's,
/// a value.v0 or connection string is resolved recursively, a non-secret parameter is its default (or the value given
/// with <c>--parameter</c>), and a secret stays a reference to its Secret.
/// </summary>
/// <param name="manifest">The manifest expressions point into.</param>
/// <param name="parameterValues">Values for non-secret parameters (<c>--parameter name=value</c>).</param>
public sealed partial class ExpressionResolver(AspireManifest manifest, IReadOnlyDictionary<string, string> parameterValues)
{
    /// <summary>Aspire's variable name for a resource name: upper case, anything else than letters and digits an underscore.</summary>
    public static string EnvironmentName(string name) =>
        string.Concat(name.Select(c => char.IsAsciiLetterOrDigit(c) ? char.ToUpperInvariant(c) : '_'));

    /// <summary>Resolves <paramref name="text"/>; <paramref name="where"/> names its place in the manifest for errors.</summary>
    public ResolvedValue Resolve(string text, string where)
    {
        var parts = new List<ValuePart>();
        var endpoints = new List<EndpointUse>();
        Append(text, where, parts, endpoints, []);

        return new ResolvedValue(Merge(parts), endpoints);
    }

    // Adjacent literals merge and empty ones go, so a value without secrets is a single literal.
    private static List<ValuePart> Merge(List<ValuePart> parts)
    {
        var merged = new List<ValuePart>();
        foreach (var part in parts)
        {
            if (part is LiteralPart { Text.Length: 0 })
            {
                continue;
            }

            if (part is LiteralPart next && merged is [.., LiteralPart previous])
            {
                merged[^1] = new LiteralPart(previous.Text + next.Text);
            }
            else
            {
                merged.Add(part);
            }
        }

        return merged;
    }

    private void Append(string text, string where, List<ValuePart> parts, List<EndpointUse> endpoints, HashSet<string> resolving)
    {
        var last = 0;
        foreach (Match m in Expression().Matches(text))
        {
            parts.Add(new LiteralPart(text[last..m.Index]));
            var key = $"{m.Groups["r"].Value}.{m.Groups["p"].Value}";
            if (!resolving.Add(key))
            {
                throw new ManifestException($"{where}: '{m.Value}' refers to itself through {string.Join(" -> ", resolving)}");
            }

            AppendExpression(m.Groups["r"].Value, m.Groups["p"].Value, m.Value, where, parts, endpoints, resolving);
            resolving.Remove(key);
            last = m.Index + m.Length;
        }

        parts.Add(new LiteralPart(text[last..]));
    }

    private void AppendExpression(string name, string property, string expression, string where,
        List<ValuePart> parts, List<EndpointUse> endpoints, HashSet<string> resolving)
    {
        var resource = manifest.Find(name)
            ?? throw new ManifestException($"{where}: '{expression}' refers to resource '{name}', which the manifest does not have");
        switch (resource, property)
        {
            case (_, "connectionString"):
                var connectionString = resource switch
                {
                    WorkloadResource w => w.ConnectionString,
                    ValueResource v => v.ConnectionString,
                    ParameterResource p => p.ConnectionString,
                    _ => null,
                } ?? throw new ManifestException($"{where}: '{expression}': resource '{name}' has no connectionString");
                Append(connectionString, $"resources.{name}.connectionString", parts, endpoints, resolving);
                break;

            case (ParameterResource p, "value"):
                if (IsSecret(p))
                {
                    parts.Add(new SecretPart(new SecretSource(p.Name, p.Name, Filter: null)));
                }
                else
                {
                    Append(p.Value, $"resources.{name}.value", parts, endpoints, resolving);
                }

                break;

            case (ParameterResource p, _) when property.StartsWith("inputs.", StringComparison.Ordinal):
                parts.Add(InputValue(p, property["inputs.".Length..], where, expression));
                break;

            case (AnnotatedStringResource a, "value"):
                var inner = new List<ValuePart>();
                Append(a.Value, $"resources.{name}.value", inner, endpoints, resolving);
                parts.Add(Filtered(a, new ResolvedValue(Merge(inner), []), where));
                break;

            case (WorkloadResource w, _) when property.StartsWith("bindings.", StringComparison.Ordinal):
                var path = property["bindings.".Length..].Split('.');
                var binding = path.Length == 2 ? w.Bindings.FirstOrDefault(b => b.Name == path[0]) : null;
                if (binding is null)
                {
                    throw new ManifestException($"{where}: '{expression}': resource '{name}' has no binding '{path[0]}'");
                }

                parts.Add(new LiteralPart(path[1] switch
                {
                    "host" => w.Name,
                    "port" => Ports.Service(w, binding).ToString(CultureInfo.InvariantCulture),
                    "targetPort" => Ports.Target(w, binding).ToString(CultureInfo.InvariantCulture),
                    "url" => string.Create(CultureInfo.InvariantCulture, $"{binding.Scheme}://{w.Name}:{Ports.Service(w, binding)}"),
                    "scheme" => binding.Scheme,
                    // Aspire renders the flag as bool.ToString(): True / False.
                    "tlsEnabled" => binding.Tls ? bool.TrueString : bool.FalseString,
                    _ => throw new ManifestException($"{where}: '{expression}': bindings have no property '{path[1]}'"),
                }));

                // Reading a binding's scheme or TLS flag is configuration, not a connection.
                if (path[1] is not ("scheme" or "tlsEnabled") && !endpoints.Contains(new EndpointUse(w, binding)))
                {
                    endpoints.Add(new EndpointUse(w, binding));
                }

                break;

            default:
                throw new ManifestException($"{where}: '{expression}': resource '{name}' has no property '{property}'");
        }
    }

    // A parameter's value is a secret when any input is, and also when it would have to be generated: a generated value
    // written into the output would differ on every run and be readable by anyone with the repository.
    private bool IsSecret(ParameterResource p) =>
        p.Inputs.Values.Any(i => i.Secret) ||
        (!parameterValues.ContainsKey(p.Name) && p.Inputs.Values.Any(i => i.DefaultValue is null && i.Generate is not null));

    private ValuePart InputValue(ParameterResource p, string inputName, string where, string expression)
    {
        var input = p.Inputs.GetValueOrDefault(inputName)
            ?? throw new ManifestException($"{where}: '{expression}': parameter '{p.Name}' has no input '{inputName}'");
        if (IsSecret(p))
        {
            return new SecretPart(new SecretSource(p.Name, p.Name, Filter: null));
        }

        return new LiteralPart(parameterValues.GetValueOrDefault(p.Name) ?? input.DefaultValue
            ?? throw new ManifestException($"resources.{p.Name}: the parameter has no value; pass --parameter {p.Name}=VALUE"));
    }

    private static ValuePart Filtered(AnnotatedStringResource a, ResolvedValue inner, string where)
    {
        if (a.Filter != "uri")
        {
            throw new ManifestException($"resources.{a.Name}.filter: '{a.Filter}' is not a filter this generator knows (uri)");
        }

        if (inner.Secrets.Count == 0)
        {
            return new LiteralPart(Uri.EscapeDataString(inner.Literal));
        }

        // A secret is encoded where it lives: the ExternalSecret of this name templates the store's value.
        return inner.WholeSecret is { Filter: null } secret
            ? new SecretPart(new SecretSource(a.Name, secret.Parameter, a.Filter))
            : throw new ManifestException($"{where}: resources.{a.Name}: a filter can only apply to one whole secret parameter");
    }

    [GeneratedRegex(@"\{(?<r>[A-Za-z0-9_-]+)\.(?<p>[A-Za-z0-9_.-]+)\}")]
    private static partial Regex Expression();
}

/// <summary>The ports of a workload's bindings inside the cluster.</summary>
public static class Ports
{
    /// <summary>Default target port of a project's http binding (the port .NET container images listen on).</summary>
    public const int ProjectHttp = 8080;

    /// <summary>Default target port of a project's https binding.</summary>
    public const int ProjectHttps = 8443;

    /// <summary>The port the pod listens on.</summary>
    public static int Target(WorkloadResource w, Binding b)
    {
        if (b.TargetPort is int target)
        {
            return target;
        }

        // The manifest leaves a project's listening port to the deployment tool (HTTP_PORTS is {x.bindings.http.targetPort});
        // like Aspirate, 8080 for http and 8443 for https, when that is unambiguous.
        var byScheme = b.Scheme switch { "http" => ProjectHttp, "https" => ProjectHttps, _ => (int?)null };
        if (w.Kind == WorkloadKind.Project && byScheme is int port &&
            w.Bindings.Count(o => o.TargetPort is null && o.Port is null && o.Scheme == b.Scheme) == 1 &&
            !w.Bindings.Any(o => o.TargetPort == port))
        {
            return port;
        }

        return b.Port ?? throw new ManifestException(
            $"resources.{w.Name}.bindings.{b.Name}: no targetPort, and no unambiguous default; set one in the AppHost (WithEndpoint(..., targetPort: N))");
    }

    /// <summary>The port the workload's Service exposes: the binding's port, else its target port.</summary>
    public static int Service(WorkloadResource w, Binding b) => b.Port ?? Target(w, b);
}
