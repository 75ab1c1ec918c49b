using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Platform.ModelRegistry;

namespace Platform.AdminApi;

/// <summary>
/// The model registry API under <c>/api/models</c> (admin key required). Errors are <c>{"error": "..."}</c> naming the
/// field; client mistakes are 4xx.
/// </summary>
internal static partial class RegistryEndpoints
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static void MapRegistryEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var api = endpoints.MapGroup("/api/models").AddEndpointFilter<AdminKeyFilter>();

        api.MapGet("/", async (IModelRegistryReader store, CancellationToken ct) => Results.Ok(new { models = await store.ListModelsAsync(ct) }));

        api.MapGet("/{name}", async (string name, IModelRegistryReader store, CancellationToken ct) =>
            ValidateName(name) ?? (await store.GetModelAsync(name, ct) is { } model ? Results.Ok(model) : UnknownModel(name)));

        api.MapPost("/{name}/versions", UploadAsync);

        api.MapGet("/{name}/versions/{version}", async (string name, string version, IModelRegistryReader store, CancellationToken ct) =>
        {
            if (ValidateNameAndVersion(name, version, out var number) is { } invalid)
            {
                return invalid;
            }
            return await store.GetVersionAsync(name, number, ct) is { } found ? Results.Ok(found) : UnknownVersion(name, number);
        });

        api.MapPost("/{name}/versions/{version}/activate", (string name, string version, ModelRegistryStore store, ModelRegistryNotifications notifications, CancellationToken ct) =>
            SetStateAsync(name, version, ModelVersionStates.Active, store, notifications, ct));

        api.MapPost("/{name}/versions/{version}/deactivate", (string name, string version, ModelRegistryStore store, ModelRegistryNotifications notifications, CancellationToken ct) =>
            SetStateAsync(name, version, ModelVersionStates.Inactive, store, notifications, ct));

        api.MapDelete("/{name}/versions/{version}", async (string name, string version, string? force, ModelRegistryStore store,
            ModelRegistryNotifications notifications, CancellationToken ct) =>
        {
            if (ValidateNameAndVersion(name, version, out var number) is { } invalid)
            {
                return invalid;
            }
            var forced = false;
            if (force is not null && !bool.TryParse(force, out forced))
            {
                return BadRequest($"force: '{force}' is not true or false");
            }
            switch (await store.DeleteVersionAsync(name, number, forced, ct))
            {
                case DeleteVersionOutcome.NotFound:
                    return UnknownVersion(name, number);
                case DeleteVersionOutcome.OnlyActiveVersion:
                    return Results.Json(new ApiError(
                        $"version: {number} is the only active version of model '{name}' and serves its traffic; activate another version first, or delete with ?force=true"),
                        statusCode: StatusCodes.Status409Conflict);
                default:
                    await notifications.PublishAsync(new ModelRegistryChange(name, number, "deleted"), ct);
                    return Results.NoContent();
            }
        });

        api.MapGet("/{name}/settings", async (string name, IModelRegistryReader store, CancellationToken ct) =>
            ValidateName(name) ?? (await store.GetModelAsync(name, ct) is { } model ? Results.Ok(model.Settings) : UnknownModel(name)));

        api.MapPut("/{name}/settings", UpdateSettingsAsync);
        api.MapPatch("/{name}/settings", UpdateSettingsAsync);

        api.MapFeatureBindingEndpoints();
    }

    private static async Task<IResult> UploadAsync(string name, string? activate, HttpContext context, ModelUpload upload, ModelRegistryStore store,
        ModelRegistryNotifications notifications, ILoggerFactory loggers, CancellationToken ct)
    {
        if (ValidateName(name) is { } invalid)
        {
            return invalid;
        }
        var activateNow = false;
        if (activate is not null && !bool.TryParse(activate, out activateNow))
        {
            return BadRequest($"activate: '{activate}' is not true or false");
        }
        var request = context.Request;
        if (request.ContentType is { } contentType && !contentType.StartsWith("application/octet-stream", StringComparison.OrdinalIgnoreCase))
        {
            return Results.Json(new ApiError($"Content-Type: expected application/octet-stream (the raw ONNX file), got '{contentType}'"),
                statusCode: StatusCodes.Status415UnsupportedMediaType);
        }
        if (request.ContentLength > ModelUpload.MaxModelBytes)
        {
            return Results.Json(new ApiError($"body: {request.ContentLength} bytes exceeds the {ModelUpload.MaxModelBytes}-byte limit"),
                statusCode: StatusCodes.Status413PayloadTooLarge);
        }
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            // The server-wide default (30 MB) is for JSON; model files are streamed, so a large limit costs no memory.
            limit.MaxRequestBodySize = ModelUpload.MaxModelBytes;
        }

        ValidatedModelFile file;
        try
        {
            file = await upload.ReceiveAsync(request.Body, name, ct);
        }
        catch (UploadRejectedException ex)
        {
            return Results.Json(new ApiError(ex.Message), statusCode: ex.StatusCode);
        }
        catch (BadHttpRequestException ex)
        {
            return Results.Json(new ApiError($"body: {ex.Message}"), statusCode: ex.StatusCode);
        }

        using (file)
        {
            var result = await store.RegisterVersionAsync(name, file.Path, file.Sha256, file.SizeBytes, file.Inputs, file.Outputs, activateNow, ct);
            var version = result.Version;
            if (result.Created)
            {
                LogRegistered(loggers.CreateLogger("Platform.AdminApi.Registry"), name, version.Version, version.Sha256, version.SizeBytes, version.State);
                await notifications.PublishAsync(new ModelRegistryChange(name, version.Version, version.IsActive ? "activated" : "registered"), ct);
                return Results.Created($"/api/models/{Uri.EscapeDataString(name)}/versions/{version.Version}", version);
            }
            return Results.Ok(version);
        }
    }

    private static async Task<IResult> SetStateAsync(string name, string version, string state, ModelRegistryStore store,
        ModelRegistryNotifications notifications, CancellationToken ct)
    {
        if (ValidateNameAndVersion(name, version, out var number) is { } invalid)
        {
            return invalid;
        }
        var updated = await store.SetStateAsync(name, number, state, ct);
        if (updated is null)
        {
            return UnknownVersion(name, number);
        }
        await notifications.PublishAsync(new ModelRegistryChange(name, number, state == ModelVersionStates.Active ? "activated" : "deactivated"), ct);
        return Results.Ok(updated);
    }

    private static async Task<IResult> UpdateSettingsAsync(string name, HttpContext context, ModelRegistryStore store,
        ModelRegistryNotifications notifications, CancellationToken ct)
    {
        if (ValidateName(name) is { } invalid)
        {
            return invalid;
        }
        ModelSettingsPatch? patch;
        try
        {
            patch = await JsonSerializer.DeserializeAsync<ModelSettingsPatch>(context.Request.Body, Json, ct);
        }
        catch (JsonException ex)
        {
            var field = ex.Path is { Length: > 2 } path ? path.TrimStart('$', '.') : "body";
            return BadRequest($"{field}: {FirstSentence(ex.Message)}");
        }
        if (patch is null)
        {
            return BadRequest("body: a JSON object with maxBatchSize, maxQueueDelayMicros, queueCapacity, cacheEnabled and/or cacheTtlSeconds is required");
        }
        try
        {
            var settings = await store.UpdateSettingsAsync(name, patch, ct);
            if (settings is null)
            {
                return UnknownModel(name);
            }
            await notifications.PublishAsync(new ModelRegistryChange(name, null, "settings"), ct);
            return Results.Ok(settings);
        }
        catch (ArgumentException ex)
        {
            return BadRequest(ex.Message[..(ex.Message.IndexOf(" (Parameter", StringComparison.Ordinal) is var cut and >= 0 ? cut : ex.Message.Length)]);
        }
    }

    private static string FirstSentence(string message)
    {
        var end = message.IndexOf(". ", StringComparison.Ordinal);
        return end > 0 ? message[..end] : message;
    }

    private static IResult? ValidateName(string name) =>
        ModelNames.Validate(name) is { } problem ? BadRequest($"name: '{name}' {problem}") : null;

    internal static IResult? ValidateNameAndVersion(string name, string version, out long number)
    {
        var versionProblem = ParseVersion(version, out number);
        return ValidateName(name) ?? versionProblem;
    }

    private static IResult? ParseVersion(string text, out long version) =>
        long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out version) && version >= 1
            ? null
            : BadRequest($"version: '{text}' is not a positive integer");

    internal static IResult BadRequest(string message) => Results.BadRequest(new ApiError(message));

    private static IResult UnknownModel(string name) => Results.NotFound(new ApiError($"name: no model '{name}'"));

    internal static IResult UnknownVersion(string name, long version) =>
        Results.NotFound(new ApiError($"version: model '{name}' has no version {version}"));

    [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "Registered {Model} version {Version} ({Sha256}, {Bytes} bytes, {State})")]
    private static partial void LogRegistered(ILogger logger, string model, long version, string sha256, long bytes, string state);
}
