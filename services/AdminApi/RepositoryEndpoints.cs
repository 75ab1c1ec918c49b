using System.Globalization;
using System.Text.Json;
using Platform.ModelRegistry;

namespace Platform.AdminApi;

/// <summary>
/// Triton's model repository extension mapped onto the registry (admin key required): <c>POST /v2/repository/index</c>
/// lists every model version with its registry state, <c>…/models/{m}/load</c> activates the newest version (or the
/// one named by <c>parameters.version</c>) and <c>…/models/{m}/unload</c> deactivates every active version. Platform
/// has one repository; workers follow activations without restart. InferenceApi serves the same routes (and gRPC) to
/// clients and forwards them here with the caller's key.
/// </summary>
internal static class RepositoryEndpoints
{
    /// <summary>Triton's state of a version that workers serve (InferenceApi narrows it to LOADING until a worker has it).</summary>
    public const string Ready = "READY";

    /// <summary>Triton's state of a version that is not served.</summary>
    public const string Unavailable = "UNAVAILABLE";

    public static void MapRepositoryEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var repository = endpoints.MapGroup("/v2/repository").AddEndpointFilter<AdminKeyFilter>();
        repository.MapPost("/index", IndexAsync);
        repository.MapPost("/models/{name}/load", LoadAsync);
        repository.MapPost("/models/{name}/unload", UnloadAsync);
    }

    private static async Task<IResult> IndexAsync(HttpContext context, IModelRegistryReader registry, CancellationToken ct)
    {
        var body = await ReadBodyAsync(context, ct);
        if (body.Error is { } invalid)
        {
            return invalid;
        }
        var readyOnly = false;
        if (body.Json is { } json && json.TryGetProperty("ready", out var ready))
        {
            if (ready.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
            {
                return RegistryEndpoints.BadRequest("ready: must be true or false");
            }
            readyOnly = ready.GetBoolean();
        }

        var models = await registry.ListModelsAsync(ct);
        var index = models
            .SelectMany(m => m.Versions)
            .Where(v => !readyOnly || v.IsActive)
            .OrderBy(v => v.Name, StringComparer.Ordinal).ThenBy(v => v.Version)
            .Select(v => new RepositoryIndexEntry(v.Name, v.Version.ToString(CultureInfo.InvariantCulture),
                v.IsActive ? Ready : Unavailable, v.IsActive ? string.Empty : "not active (load it to serve it)"));
        return Results.Json(index.ToArray(), RepositoryJson);
    }

    private static async Task<IResult> LoadAsync(string name, HttpContext context, IModelRegistryReader registry, ModelRegistryStore store,
        ModelRegistryNotifications notifications, CancellationToken ct)
    {
        var body = await ReadBodyAsync(context, ct);
        if (body.Error is { } invalid)
        {
            return invalid;
        }
        long? requested = null;
        if (body.Json is { } json && json.TryGetProperty("parameters", out var parameters))
        {
            if (parameters.ValueKind != JsonValueKind.Object)
            {
                return RegistryEndpoints.BadRequest("parameters: must be an object");
            }
            foreach (var parameter in parameters.EnumerateObject())
            {
                if (parameter.Name == "version")
                {
                    if (!TryVersion(parameter.Value, out var version))
                    {
                        return RegistryEndpoints.BadRequest("parameters.version: must be a positive integer (a number or a string of digits)");
                    }
                    requested = version;
                }
                else
                {
                    // Triton's "config" and "file:..." overrides would load a model that is not in the registry.
                    return RegistryEndpoints.BadRequest(
                        $"parameters.{parameter.Name}: not supported; upload models through /api/models and load them by name (optionally with parameters.version)");
                }
            }
        }

        var model = await registry.GetModelAsync(name, ct);
        if (model is null || model.Versions.Count == 0)
        {
            return Results.NotFound(new ApiError($"name: no model '{name}' in the repository"));
        }
        var target = requested ?? model.Versions.Max(v => v.Version);
        var updated = await store.SetStateAsync(name, target, ModelVersionStates.Active, ct);
        if (updated is null)
        {
            return RegistryEndpoints.UnknownVersion(name, target);
        }
        await notifications.PublishAsync(new ModelRegistryChange(name, target, "activated"), ct);
        return Results.Json(new RepositoryLoadResult(name, target.ToString(CultureInfo.InvariantCulture)), RepositoryJson);
    }

    private static async Task<IResult> UnloadAsync(string name, HttpContext context, IModelRegistryReader registry, ModelRegistryStore store,
        ModelRegistryNotifications notifications, CancellationToken ct)
    {
        var body = await ReadBodyAsync(context, ct);
        if (body.Error is { } invalid)
        {
            return invalid;
        }
        var model = await registry.GetModelAsync(name, ct);
        if (model is null)
        {
            return Results.NotFound(new ApiError($"name: no model '{name}' in the repository"));
        }
        foreach (var version in model.ActiveVersions)
        {
            await store.SetStateAsync(name, version, ModelVersionStates.Inactive, ct);
            await notifications.PublishAsync(new ModelRegistryChange(name, version, "deactivated"), ct);
        }
        return Results.Json(new RepositoryUnloadResult(name, [.. model.ActiveVersions.Select(v => v.ToString(CultureInfo.InvariantCulture))]), RepositoryJson);
    }

    private static bool TryVersion(JsonElement value, out long version)
    {
        version = 0;
        return value.ValueKind switch
        {
            JsonValueKind.Number => value.TryGetInt64(out version) && version >= 1,
            JsonValueKind.String => long.TryParse(value.GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out version) && version >= 1,
            _ => false,
        };
    }

    /// <summary>The optional JSON object body Triton's repository routes take.</summary>
    private static async Task<(JsonElement? Json, IResult? Error)> ReadBodyAsync(HttpContext context, CancellationToken ct)
    {
        if (context.Request.ContentLength is 0 || (context.Request.ContentLength is null && !context.Request.Headers.ContainsKey("Transfer-Encoding")))
        {
            return (null, null);
        }
        try
        {
            using var document = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: ct);
            return document.RootElement.ValueKind == JsonValueKind.Object
                ? (document.RootElement.Clone(), null)
                : (null, RegistryEndpoints.BadRequest("body: must be a JSON object"));
        }
        catch (JsonException ex)
        {
            return (null, RegistryEndpoints.BadRequest($"body: not valid JSON ({ex.Message})"));
        }
    }

    private static readonly JsonSerializerOptions RepositoryJson = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
}

/// <summary>One entry of <c>POST /v2/repository/index</c> (Triton's shape).</summary>
internal sealed record RepositoryIndexEntry(string Name, string Version, string State, string Reason);

/// <summary>Answer of a load: the version now active.</summary>
internal sealed record RepositoryLoadResult(string Name, string Version);

/// <summary>Answer of an unload: the versions deactivated.</summary>
internal sealed record RepositoryUnloadResult(string Name, IReadOnlyList<string> Versions);
