using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using Platform.Hosting.ApplicationModel;

namespace Platform.Hosting.Publishing.Manifest;

/// <summary>
/// Writes Aspire's deployment manifest (<c>--publisher manifest</c>): one JSON object per resource,
/// typed <c>project.v0</c>, <c>container.v0</c>, <c>executable.v0</c>, <c>value.v0</c> or <c>parameter.v0</c>,
/// with values as manifest expressions (<c>{postgres.connectionString}</c>) so no secret is ever written.
/// </summary>
public sealed class ManifestPublisher : IDistributedApplicationPublisher
{
    /// <summary>The schema Aspire's tools validate a manifest against.</summary>
    public const string SchemaUrl = "https://json.schemastore.org/aspire-8.0.json";

    /// <inheritdoc />
    public string Name => "manifest";

    /// <inheritdoc />
    public async Task PublishAsync(PublishingContext context, CancellationToken cancellationToken)
    {
        var directory = Path.GetDirectoryName(context.OutputPath)!;
        Directory.CreateDirectory(directory);
        var bytes = Write(context);
        var tmp = context.OutputPath + ".tmp";
        await File.WriteAllBytesAsync(tmp, bytes, cancellationToken).ConfigureAwait(false);
        File.Move(tmp, context.OutputPath, overwrite: true);
    }

    /// <summary>The manifest as UTF-8 JSON (deterministic: model order, environment in the order callbacks write it).</summary>
    public static byte[] Write(PublishingContext context)
    {
        var manifestDirectory = Path.GetDirectoryName(context.OutputPath)!;
        var model = new HashSet<IResource>(context.Resources);
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions
        {
            Indented = true,
            // Aspire's manifests keep '+', '&' and quotes in connection strings readable.
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        }))
        {
            writer.WriteStartObject();
            writer.WriteString("$schema", SchemaUrl);
            writer.WriteStartObject("resources");
            foreach (var resource in context.Resources)
            {
                writer.WritePropertyName(resource.Name);
                WriteResource(writer, resource, context, manifestDirectory, model);
            }

            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        stream.WriteByte((byte)'\n');
        return stream.ToArray();
    }

    private static void WriteResource(Utf8JsonWriter w, IResource resource, PublishingContext context, string manifestDirectory, HashSet<IResource> model)
    {
        w.WriteStartObject();
        switch (resource)
        {
            case ParameterResource p:
                WriteParameter(w, p);
                break;
            case ConnectionStringResource c:
                // Aspire writes AddConnectionString as a secret parameter that is also a connection string.
                w.WriteString("type", "parameter.v0");
                w.WriteString("connectionString", $"{{{c.Name}.value}}");
                w.WriteString("value", $"{{{c.Name}.inputs.value}}");
                w.WriteStartObject("inputs");
                w.WriteStartObject("value");
                w.WriteString("type", "string");
                w.WriteBoolean("secret", true);
                w.WriteEndObject();
                w.WriteEndObject();
                break;
            case ProjectResource project:
                w.WriteString("type", "project.v0");
                var projectPath = project.TryGetLastAnnotation<ProjectMetadataAnnotation>(out var metadata)
                    ? metadata.Metadata.ProjectPath
                    : throw new DistributedApplicationException($"Project '{project.Name}' has no project metadata.");
                w.WriteString("path", RelativePath(manifestDirectory, projectPath));
                WriteArgs(w, resource, model);
                WriteEnv(w, resource, context, model, ProjectDefaults(project));
                WriteBindings(w, resource);
                break;
            case ExecutableResource executable:
                w.WriteString("type", "executable.v0");
                w.WriteString("workingDirectory", RelativePath(manifestDirectory, executable.WorkingDirectory));
                w.WriteString("command", executable.Command);
                WriteArgs(w, resource, model);
                WriteEnv(w, resource, context, model, []);
                WriteBindings(w, resource);
                break;
            case ContainerResource container:
                w.WriteString("type", "container.v0");
                if (container is IResourceWithConnectionString containerConnection)
                {
                    w.WriteString("connectionString", Render(containerConnection.ConnectionStringExpression, model));
                }

                w.WriteString("image", container.TryGetLastAnnotation<ContainerImageAnnotation>(out var image)
                    ? image.Reference
                    : throw new DistributedApplicationException($"Container '{container.Name}' has no image (WithImage)."));
                WriteArgs(w, resource, model);
                WriteEnv(w, resource, context, model, []);
                WriteBindings(w, resource);
                var volumes = container.OfAnnotation<DataVolumeAnnotation>().ToList();
                if (volumes.Count > 0)
                {
                    w.WriteStartArray("volumes");
                    foreach (var v in volumes)
                    {
                        w.WriteStartObject();
                        w.WriteString("name", v.Name);
                        w.WriteString("target", v.TargetPath);
                        w.WriteBoolean("readOnly", false);
                        w.WriteEndObject();
                    }

                    w.WriteEndArray();
                }

                break;
            case IResourceWithConnectionString cs:
                // A database and similar: only a connection string, built on its server's.
                w.WriteString("type", "value.v0");
                w.WriteString("connectionString", Render(cs.ConnectionStringExpression, model));
                break;
            default:
                throw new DistributedApplicationException(
                    $"Resource '{resource.Name}' ({resource.GetType().Name}) has no manifest representation.");
        }

        w.WriteEndObject();
    }

    private static void WriteParameter(Utf8JsonWriter w, ParameterResource p)
    {
        w.WriteString("type", "parameter.v0");
        w.WriteString("value", $"{{{p.Name}.inputs.value}}");
        w.WriteStartObject("inputs");
        w.WriteStartObject("value");
        w.WriteString("type", "string");
        if (p.Secret)
        {
            w.WriteBoolean("secret", true);
        }

        if (p.Generate is { } generate)
        {
            w.WriteStartObject("default");
            w.WriteStartObject("generate");
            w.WriteNumber("minLength", generate.MinLength);
            if (!generate.Special)
            {
                // The generator uses letters and digits only, so values are safe in every connection-string format.
                w.WriteBoolean("special", false);
            }

            w.WriteEndObject();
            w.WriteEndObject();
        }

        w.WriteEndObject();
        w.WriteEndObject();
    }

    // What Aspire's manifest adds to every project: its OTLP exporter settings and the port it listens on.
    private static List<KeyValuePair<string, object>> ProjectDefaults(ProjectResource project)
    {
        List<KeyValuePair<string, object>> env =
        [
            new("OTEL_DOTNET_EXPERIMENTAL_OTLP_EMIT_EXCEPTION_LOG_ATTRIBUTES", "true"),
            new("OTEL_DOTNET_EXPERIMENTAL_OTLP_EMIT_EVENT_LOG_ATTRIBUTES", "true"),
            new("OTEL_DOTNET_EXPERIMENTAL_OTLP_RETRY", "in_memory"),
            new("ASPNETCORE_FORWARDEDHEADERS_ENABLED", "true"),
        ];
        var http = project.GetEndpoints().Where(e => e.UriScheme == "http").ToList();
        if (http.Count > 0)
        {
            env.Add(new("HTTP_PORTS", string.Join(';', http.Select(e => $"{{{project.Name}.bindings.{e.Name}.targetPort}}"))));
        }

        return env;
    }

    private static void WriteEnv(Utf8JsonWriter w, IResource resource, PublishingContext context, HashSet<IResource> model,
        List<KeyValuePair<string, object>> defaults)
    {
        var env = defaults.Concat(PublishModel.GetEnvironment(resource, context.ExecutionContext)).ToList();
        if (env.Count == 0)
        {
            return;
        }

        // Later writes win, as when a callback overwrites a default.
        var merged = new List<KeyValuePair<string, string>>();
        foreach (var (name, value) in env)
        {
            var rendered = Render(value, model);
            var index = merged.FindIndex(kv => kv.Key == name);
            if (index >= 0)
            {
                merged[index] = new(name, rendered);
            }
            else
            {
                merged.Add(new(name, rendered));
            }
        }

        w.WriteStartObject("env");
        foreach (var (name, value) in merged)
        {
            w.WriteString(name, value);
        }

        w.WriteEndObject();
    }

    private static void WriteArgs(Utf8JsonWriter w, IResource resource, HashSet<IResource> model)
    {
        var args = PublishModel.GetArgs(resource);
        if (args.Count == 0)
        {
            return;
        }

        w.WriteStartArray("args");
        foreach (var arg in args)
        {
            w.WriteStringValue(Render(arg, model));
        }

        w.WriteEndArray();
    }

    private static void WriteBindings(Utf8JsonWriter w, IResource resource)
    {
        var endpoints = resource.GetEndpoints();
        if (endpoints.Count == 0)
        {
            return;
        }

        w.WriteStartObject("bindings");
        foreach (var e in endpoints)
        {
            w.WriteStartObject(e.Name);
            w.WriteString("scheme", e.UriScheme);
            w.WriteString("protocol", e.Protocol);
            w.WriteString("transport", e.Transport);
            if (e.Port is { } port)
            {
                w.WriteNumber("port", port);
            }

            if (e.TargetPort is { } targetPort)
            {
                w.WriteNumber("targetPort", targetPort);
            }

            if (e.IsExternal)
            {
                w.WriteBoolean("external", true);
            }

            w.WriteEndObject();
        }

        w.WriteEndObject();
    }

    /// <summary>
    /// A value as a manifest string. Parameters that are not resources of the model (a server's
    /// default user name) have no manifest entry to point at, so their value is written inline;
    /// that is only allowed for non-secret parameters.
    /// </summary>
    internal static string Render(object value, HashSet<IResource> model) => value switch
    {
        string s => s,
        ParameterResource p when !model.Contains(p) => p.Secret
            ? throw new DistributedApplicationException(
                $"Secret parameter '{p.Name}' is used but is not part of the model; add it with AddParameter so the manifest can refer to it.")
            : p.Value,
        ReferenceExpression e => e.Render(v => Render(v, model)),
        IResourceBuilder<IResource> b => Render(b.Resource, model),
        IManifestExpressionProvider m => m.ValueExpression,
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => throw new DistributedApplicationException($"'{value}' ({value.GetType().Name}) cannot be written to a manifest."),
    };

    private static string RelativePath(string from, string to) =>
        Path.GetRelativePath(from, to).Replace('\\', '/');
}
