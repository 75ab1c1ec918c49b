using System.Text.Json;
using Platform.ModelRegistry;

namespace Platform.AdminApi;

/// <summary>Answer of <c>GET</c> and <c>PUT /api/models/{name}/versions/{version}/bindings</c>.</summary>
/// <param name="Model">Model name.</param>
/// <param name="Version">Version number.</param>
/// <param name="Bindings">The version's feature bindings.</param>
internal sealed record FeatureBindingsAnswer(string Model, long Version, IReadOnlyList<FeatureBinding> Bindings);

/// <summary>
/// Feature bindings of a model version: <c>GET</c> and <c>PUT /api/models/{name}/versions/{version}/bindings</c> (admin
/// key, like the rest of the registry). PUT replaces the whole list (<c>{"bindings": []}</c> removes them), checks it
/// against the version's inputs and announces the change on the registry channel so InferenceApi applies it without a
/// restart.
/// </summary>
internal static partial class FeatureBindingEndpoints
{
    public static void MapFeatureBindingEndpoints(this RouteGroupBuilder models)
    {
        models.MapGet("/{name}/versions/{version}/bindings", async (string name, string version, IModelRegistryReader reader, CancellationToken ct) =>
        {
            if (RegistryEndpoints.ValidateNameAndVersion(name, version, out var number) is { } invalid)
            {
                return invalid;
            }

            return await reader.GetVersionAsync(name, number, ct) is { } found
                ? Results.Ok(new FeatureBindingsAnswer(name, number, found.FeatureBindings))
                : RegistryEndpoints.UnknownVersion(name, number);
        });

        models.MapPut("/{name}/versions/{version}/bindings", PutAsync);
    }

    private static async Task<IResult> PutAsync(string name, string version, HttpContext context, ModelRegistryStore store,
        ModelRegistryNotifications notifications, ILoggerFactory loggers, CancellationToken ct)
    {
        if (RegistryEndpoints.ValidateNameAndVersion(name, version, out var number) is { } invalid)
        {
            return invalid;
        }

        JsonDocument document;
        try
        {
            document = await JsonDocument.ParseAsync(context.Request.Body, default, ct);
        }
        catch (JsonException ex)
        {
            return RegistryEndpoints.BadRequest($"body: not valid JSON ({ex.Message})");
        }

        IReadOnlyList<FeatureBinding> bindings;
        using (document)
        {
            if (Parse(document.RootElement, out var parsed) is { } problem)
            {
                return RegistryEndpoints.BadRequest(problem);
            }

            bindings = parsed;
        }

        var result = await store.SetFeatureBindingsAsync(name, number, bindings, ct);
        if (result.Error is { } error)
        {
            return RegistryEndpoints.BadRequest(error);
        }

        if (result.Version is not { } updated)
        {
            return RegistryEndpoints.UnknownVersion(name, number);
        }

        LogBindingsSet(loggers.CreateLogger("Platform.AdminApi.Registry"), name, number, updated.FeatureBindings.Count,
            string.Join(", ", updated.FeatureBindings.Select(b => $"{b.Input}<-{b.FeatureSet}")));
        await notifications.PublishAsync(new ModelRegistryChange(name, number, "bindings"), ct);
        return Results.Ok(new FeatureBindingsAnswer(name, number, updated.FeatureBindings));
    }

    /// <summary>Reads <c>{"bindings":[{"input","featureSet","default"?}]}</c>; the error names the field.</summary>
    private static string? Parse(JsonElement root, out IReadOnlyList<FeatureBinding> bindings)
    {
        bindings = [];
        const string Expected = "a JSON object {\"bindings\": [{\"input\": \"...\", \"featureSet\": \"...\", \"default\": [numbers] (optional)}]}";
        if (root.ValueKind != JsonValueKind.Object)
        {
            return $"body: expected {Expected}";
        }

        if (!root.TryGetProperty("bindings", out var array) || array.ValueKind != JsonValueKind.Array)
        {
            return $"bindings: is required, an array (empty to remove all bindings); body must be {Expected}";
        }

        var list = new List<FeatureBinding>(array.GetArrayLength());
        var index = 0;
        foreach (var item in array.EnumerateArray())
        {
            var at = $"bindings[{index++}]";
            if (item.ValueKind != JsonValueKind.Object)
            {
                return $"{at}: must be an object with 'input', 'featureSet' and optionally 'default'";
            }

            string? input = null;
            string? featureSet = null;
            List<double>? defaults = null;
            foreach (var property in item.EnumerateObject())
            {
                switch (property.Name)
                {
                    case "input":
                        if (property.Value.ValueKind != JsonValueKind.String)
                        {
                            return $"{at}.input: must be a string (the name of a model input)";
                        }

                        input = property.Value.GetString();
                        break;
                    case "featureSet":
                        if (property.Value.ValueKind != JsonValueKind.String)
                        {
                            return $"{at}.featureSet: must be a string (a ContextEnrichment feature set)";
                        }

                        featureSet = property.Value.GetString();
                        break;
                    case "default":
                        if (property.Value.ValueKind == JsonValueKind.Null)
                        {
                            break;
                        }

                        if (property.Value.ValueKind != JsonValueKind.Array)
                        {
                            return $"{at}.default: must be an array of numbers or null";
                        }

                        if (property.Value.GetArrayLength() > FeatureBindingRules.MaxValues)
                        {
                            return $"{at}.default: must hold 1 to {FeatureBindingRules.MaxValues} values (got {property.Value.GetArrayLength()})";
                        }

                        defaults = new List<double>(property.Value.GetArrayLength());
                        foreach (var value in property.Value.EnumerateArray())
                        {
                            if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out var number) || !double.IsFinite(number))
                            {
                                return $"{at}.default[{defaults.Count}]: must be a finite number";
                            }

                            defaults.Add(number);
                        }

                        break;
                    default:
                        return $"{at}.{property.Name}: unknown field; a binding has 'input', 'featureSet' and 'default'";
                }
            }

            if (input is null)
            {
                return $"{at}.input: is required (the name of a model input)";
            }

            if (featureSet is null)
            {
                return $"{at}.featureSet: is required (a ContextEnrichment feature set)";
            }

            list.Add(new FeatureBinding(input, featureSet, defaults));
        }

        bindings = list;
        return null;
    }

    [LoggerMessage(EventId = 11, Level = LogLevel.Information, Message = "Feature bindings of {Model} version {Version} set: {Count} ({Bindings})")]
    private static partial void LogBindingsSet(ILogger logger, string model, long version, int count, string bindings);
}
