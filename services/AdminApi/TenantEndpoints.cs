using System.Text.Json;
using Platform.ModelRegistry;
using Platform.Tenancy;
using Platform.Tenancy.Admin;
using Platform.Tenancy.Enforcement;

namespace Platform.AdminApi;

/// <summary>
/// Tenants and their API keys under <c>/api/tenants</c> (admin key required). Every write announces the change so
/// InferenceApi replicas drop their cached copy at once.
/// </summary>
internal static partial class TenantEndpoints
{
    /// <summary>Longest team, project, customer, cost center, environment or key name.</summary>
    public const int MaxLabelLength = 128;

    /// <summary>Most entries of <c>allowedModels</c>.</summary>
    public const int MaxAllowedModels = 1000;

    internal const string LogCategory = "Platform.AdminApi.Tenancy";

    private static readonly string[] TenantFields = ["name", "team", "project", "customer", "costCenter", "environment", "allowedModels", "rateLimit"];
    private static readonly string[] KeyFields = ["name", "expiresAt"];

    /// <summary>Maps the tenant, key, budget, price and usage routes.</summary>
    public static void MapTenancyEndpoints(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapTenantEndpoints();
        endpoints.MapBudgetEndpoints();
        endpoints.MapPriceEndpoints();
        endpoints.MapUsageEndpoints();
    }

    private static void MapTenantEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var api = endpoints.MapGroup("/api/tenants").AddEndpointFilter<AdminKeyFilter>();

        api.MapPost("/", CreateTenantAsync);
        api.MapGet("/", async (TenantStore store, CancellationToken ct) => Results.Ok(new { tenants = await store.ListTenantsAsync(ct) }));
        api.MapGet("/{id}", async (string id, TenantStore store, CancellationToken ct) =>
            TenancyApi.ParseTenantId(id, out var tenantId) ?? (await store.GetTenantAsync(tenantId, ct) is { } found ? Results.Ok(found.Tenant) : TenancyApi.UnknownTenant(id)));
        api.MapPatch("/{id}", UpdateTenantAsync);
        api.MapDelete("/{id}", async (string id, TenantStore store, TenancyChangePublisher changes, ILoggerFactory loggers, CancellationToken ct) =>
        {
            if (TenancyApi.ParseTenantId(id, out var tenantId) is { } invalid)
            {
                return invalid;
            }

            if (!await store.DeleteTenantAsync(tenantId, ct))
            {
                return TenancyApi.UnknownTenant(id);
            }

            await changes.TenantChangedAsync(tenantId, ct);
            LogTenantDeleted(loggers.CreateLogger(LogCategory), tenantId);
            return Results.NoContent();
        });

        api.MapPost("/{id}/keys", CreateKeyAsync);
        api.MapGet("/{id}/keys", async (string id, string? prefix, TenantStore store, TimeProvider time, CancellationToken ct) =>
        {
            if (TenancyApi.ParseTenantId(id, out var tenantId) is { } invalid)
            {
                return invalid;
            }

            if (prefix is not null)
            {
                // Accept what a user can copy from a key: the 12-hex-digit prefix, its start, or "pk_<prefix>…".
                prefix = prefix.Trim().ToLowerInvariant();
                if (prefix.StartsWith("pk_", StringComparison.Ordinal))
                {
                    prefix = prefix[3..].Split('_')[0];
                }

                if (prefix.Length is 0 or > 12 || !prefix.All(char.IsAsciiHexDigitLower))
                {
                    return TenancyApi.BadRequest("prefix: must be 1 to 12 hexadecimal digits (the start of a key after 'pk_')");
                }
            }

            if (await store.GetTenantAsync(tenantId, ct) is null)
            {
                return TenancyApi.UnknownTenant(id);
            }

            var now = time.GetUtcNow();
            return Results.Ok(new { keys = (await store.ListKeysAsync(tenantId, prefix, ct)).Select(k => ApiKeyView.Of(k, now)) });
        });
        api.MapGet("/{id}/keys/{keyId}", async (string id, string keyId, TenantStore store, TimeProvider time, CancellationToken ct) =>
        {
            var invalidTenant = TenancyApi.ParseTenantId(id, out var tenantId);
            var invalidKey = ParseKeyId(keyId, out var key);
            if ((invalidTenant ?? invalidKey) is { } invalid)
            {
                return invalid;
            }

            return await store.GetKeyAsync(tenantId, key, ct) is { } found ? Results.Ok(ApiKeyView.Of(found, time.GetUtcNow())) : await UnknownKeyAsync(store, tenantId, id, keyId, ct);
        });
        api.MapPost("/{id}/keys/{keyId}/revoke", RevokeKeyAsync);
        api.MapDelete("/{id}/keys/{keyId}", RevokeKeyAsync);
    }

    private static async Task<IResult> CreateTenantAsync(HttpContext context, TenantStore store, TenancyChangePublisher changes, ILoggerFactory loggers, CancellationToken ct)
    {
        var (body, error) = await JsonBody.ReadAsync(context.Request, emptyAllowed: false, TenantFields, ct);
        if (body is null)
        {
            return TenancyApi.BadRequest(error!);
        }

        var draft = new TenantDraft(
            ReadName(body) ?? string.Empty,
            body.Text("team", MaxLabelLength),
            body.Text("project", MaxLabelLength),
            body.Text("customer", MaxLabelLength),
            body.Text("costCenter", MaxLabelLength),
            body.Text("environment", MaxLabelLength),
            ReadAllowedModels(body) ?? [],
            ReadRateLimit(body));
        if (body.Error is not null)
        {
            return TenancyApi.BadRequest(body.Error);
        }

        var result = await store.CreateTenantAsync(draft, ct);
        if (result.Outcome == WriteOutcome.Conflict)
        {
            return NameTaken(draft.Name);
        }

        var tenant = result.Value!;
        await changes.TenantChangedAsync(tenant.Id, ct);
        LogTenantCreated(loggers.CreateLogger(LogCategory), tenant.Id, tenant.Name);
        return Results.Created($"/api/tenants/{tenant.Id}", tenant);
    }

    private static async Task<IResult> UpdateTenantAsync(string id, HttpContext context, TenantStore store, TenancyChangePublisher changes, ILoggerFactory loggers,
        CancellationToken ct)
    {
        if (TenancyApi.ParseTenantId(id, out var tenantId) is { } invalid)
        {
            return invalid;
        }

        var (body, error) = await JsonBody.ReadAsync(context.Request, emptyAllowed: false, TenantFields, ct);
        if (body is null)
        {
            return TenancyApi.BadRequest(error!);
        }

        // Read everything first, so validation fails before anything is written; then apply only the fields sent.
        var name = body.Has("name") ? ReadName(body) : null;
        var team = body.Text("team", MaxLabelLength);
        var project = body.Text("project", MaxLabelLength);
        var customer = body.Text("customer", MaxLabelLength);
        var costCenter = body.Text("costCenter", MaxLabelLength);
        var environment = body.Text("environment", MaxLabelLength);
        var allowedModels = ReadAllowedModels(body);
        var rateLimit = ReadRateLimit(body);
        if (body.Error is not null)
        {
            return TenancyApi.BadRequest(body.Error);
        }

        var result = await store.UpdateTenantAsync(tenantId, current => current with
        {
            Name = name ?? current.Name,
            Team = body.Has("team") ? team : current.Team,
            Project = body.Has("project") ? project : current.Project,
            Customer = body.Has("customer") ? customer : current.Customer,
            CostCenter = body.Has("costCenter") ? costCenter : current.CostCenter,
            Environment = body.Has("environment") ? environment : current.Environment,
            AllowedModels = body.Has("allowedModels") ? allowedModels ?? [] : current.AllowedModels,
            // rateLimit: null resets to the platform default.
            RateLimit = body.Has("rateLimit") ? rateLimit : current.RateLimit,
        }, ct);
        switch (result.Outcome)
        {
            case WriteOutcome.NotFound:
                return TenancyApi.UnknownTenant(id);
            case WriteOutcome.Conflict:
                return NameTaken(name!);
            default:
                await changes.TenantChangedAsync(tenantId, ct);
                LogTenantUpdated(loggers.CreateLogger(LogCategory), tenantId, string.Join(",", TenantFields.Where(body.Has)));
                return Results.Ok(result.Value);
        }
    }

    private static async Task<IResult> CreateKeyAsync(string id, HttpContext context, TenantStore store, TenancyChangePublisher changes, TimeProvider time,
        ILoggerFactory loggers, CancellationToken ct)
    {
        if (TenancyApi.ParseTenantId(id, out var tenantId) is { } invalid)
        {
            return invalid;
        }

        var (body, error) = await JsonBody.ReadAsync(context.Request, emptyAllowed: true, KeyFields, ct);
        if (body is null)
        {
            return TenancyApi.BadRequest(error!);
        }

        var name = body.Text("name", MaxLabelLength) ?? string.Empty;
        var expiresAt = body.Timestamp("expiresAt");
        var now = time.GetUtcNow();
        if (expiresAt is { } expires && expires <= now)
        {
            body.Fail($"expiresAt: {expires:O} is not in the future");
        }

        if (body.Error is not null)
        {
            return TenancyApi.BadRequest(body.Error);
        }

        var created = await store.CreateKeyAsync(tenantId, name, expiresAt, ct);
        if (created is null)
        {
            return TenancyApi.UnknownTenant(id);
        }

        // A new key cannot be cached anywhere, but an earlier "unknown prefix" answer could be.
        await changes.TenantChangedAsync(tenantId, ct);
        var key = created.Key;
        LogKeyCreated(loggers.CreateLogger(LogCategory), tenantId, key.Id, key.Prefix, key.ExpiresAt);
        return Results.Created($"/api/tenants/{tenantId}/keys/{key.Id}",
            new CreatedKeyView(key.Id, key.TenantId, key.Prefix, key.Name, key.CreatedAt, key.ExpiresAt, created.Plaintext));
    }

    private static async Task<IResult> RevokeKeyAsync(string id, string keyId, TenantStore store, TenancyChangePublisher changes, TimeProvider time,
        ILoggerFactory loggers, CancellationToken ct)
    {
        var invalidTenant = TenancyApi.ParseTenantId(id, out var tenantId);
        var invalidKey = ParseKeyId(keyId, out var key);
        if ((invalidTenant ?? invalidKey) is { } invalid)
        {
            return invalid;
        }

        var revoked = await store.RevokeKeyAsync(tenantId, key, ct);
        if (revoked is null)
        {
            return await UnknownKeyAsync(store, tenantId, id, keyId, ct);
        }

        await changes.TenantChangedAsync(tenantId, ct);
        LogKeyRevoked(loggers.CreateLogger(LogCategory), tenantId, revoked.Id, revoked.Prefix);
        return Results.Ok(ApiKeyView.Of(revoked, time.GetUtcNow()));
    }

    private static string? ReadName(JsonBody body)
    {
        var name = body.RequiredText("name", ModelNames.MaxLength);
        if (body.Error is null && ModelNames.Validate(name) is { } problem)
        {
            body.Fail($"name: '{name}' {problem}");
        }

        return body.Error is null ? name : null;
    }

    private static IReadOnlyList<string>? ReadAllowedModels(JsonBody body)
    {
        var models = body.Strings("allowedModels", MaxAllowedModels);
        if (models is null)
        {
            return null;
        }

        for (var i = 0; i < models.Count; i++)
        {
            if (models[i] != Tenant.AllModels && ModelNames.Validate(models[i]) is { } problem)
            {
                body.Fail($"allowedModels[{i}]: '{models[i]}' {problem} (or is \"*\" for every model)");
                return null;
            }
        }

        return [.. models.Distinct(StringComparer.Ordinal)];
    }

    private static RateLimit? ReadRateLimit(JsonBody body)
    {
        if (body.Object("rateLimit") is not { } element)
        {
            return null;
        }

        double? perSecond = null;
        int? burst = null;
        foreach (var property in element.EnumerateObject())
        {
            if (string.Equals(property.Name, "requestsPerSecond", StringComparison.OrdinalIgnoreCase))
            {
                perSecond = property.Value.ValueKind == JsonValueKind.Number && property.Value.TryGetDouble(out var value) ? value : double.NaN;
            }
            else if (string.Equals(property.Name, "burst", StringComparison.OrdinalIgnoreCase))
            {
                burst = property.Value.ValueKind == JsonValueKind.Number && property.Value.TryGetInt32(out var value) ? value : int.MinValue;
            }
            else
            {
                body.Fail($"rateLimit.{property.Name}: unknown field (expected requestsPerSecond, burst)");
                return null;
            }
        }

        if (perSecond is null || burst is null)
        {
            body.Fail($"rateLimit.{(perSecond is null ? "requestsPerSecond" : "burst")}: is required (send rateLimit: null for the platform default)");
            return null;
        }

        if (burst == int.MinValue)
        {
            body.Fail("rateLimit.burst: must be a whole number");
            return null;
        }

        var limit = new RateLimit(perSecond.Value, burst.Value);
        if (limit.Validate("rateLimit") is { } problem)
        {
            body.Fail(problem);
            return null;
        }

        return limit;
    }

    private static IResult? ParseKeyId(string text, out Guid keyId) =>
        Guid.TryParse(text, out keyId) ? null : TenancyApi.BadRequest($"keyId: '{text}' is not a key id (a UUID)");

    private static async Task<IResult> UnknownKeyAsync(TenantStore store, Guid tenantId, string id, string keyId, CancellationToken ct) =>
        await store.GetTenantAsync(tenantId, ct) is null
            ? TenancyApi.UnknownTenant(id)
            : Results.NotFound(new ApiError($"keyId: tenant '{id}' has no key '{keyId}'"));

    private static IResult NameTaken(string name) =>
        Results.Json(new ApiError($"name: a tenant named '{name}' already exists"), statusCode: StatusCodes.Status409Conflict);

    [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "Created tenant {TenantId} ({TenantName})")]
    private static partial void LogTenantCreated(ILogger logger, Guid tenantId, string tenantName);

    [LoggerMessage(EventId = 21, Level = LogLevel.Information, Message = "Updated tenant {TenantId}: {Fields}")]
    private static partial void LogTenantUpdated(ILogger logger, Guid tenantId, string fields);

    [LoggerMessage(EventId = 22, Level = LogLevel.Information, Message = "Deleted tenant {TenantId} with its keys and budget")]
    private static partial void LogTenantDeleted(ILogger logger, Guid tenantId);

    [LoggerMessage(EventId = 23, Level = LogLevel.Information, Message = "Created key {KeyPrefix} ({KeyId}) for tenant {TenantId}, expires {ExpiresAt}")]
    private static partial void LogKeyCreated(ILogger logger, Guid tenantId, Guid keyId, string keyPrefix, DateTimeOffset? expiresAt);

    [LoggerMessage(EventId = 24, Level = LogLevel.Information, Message = "Revoked key {KeyPrefix} ({KeyId}) of tenant {TenantId}")]
    private static partial void LogKeyRevoked(ILogger logger, Guid tenantId, Guid keyId, string keyPrefix);
}

/// <summary>A key as listed: never the secret or its hash.</summary>
/// <param name="Id">Key id.</param>
/// <param name="TenantId">Owner.</param>
/// <param name="Prefix">Public prefix.</param>
/// <param name="Name">Label.</param>
/// <param name="CreatedAt">Creation time.</param>
/// <param name="ExpiresAt">Expiry, if any.</param>
/// <param name="RevokedAt">Revocation time, if revoked.</param>
/// <param name="LastUsedAt">Last use, if recorded.</param>
/// <param name="State">active, revoked or expired (now).</param>
internal sealed record ApiKeyView(Guid Id, Guid TenantId, string Prefix, string Name, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt,
    DateTimeOffset? RevokedAt, DateTimeOffset? LastUsedAt, string State)
{
    public static ApiKeyView Of(ApiKeyInfo key, DateTimeOffset now) =>
        new(key.Id, key.TenantId, key.Prefix, key.Name, key.CreatedAt, key.ExpiresAt, key.RevokedAt, key.LastUsedAt, key.StateAt(now));
}

/// <summary>The answer to creating a key: the only place the plaintext <paramref name="Key"/> ever appears.</summary>
/// <param name="Id">Key id.</param>
/// <param name="TenantId">Owner.</param>
/// <param name="Prefix">Public prefix.</param>
/// <param name="Name">Label.</param>
/// <param name="CreatedAt">Creation time.</param>
/// <param name="ExpiresAt">Expiry, if any.</param>
/// <param name="Key">The full key; not retrievable later.</param>
internal sealed record CreatedKeyView(Guid Id, Guid TenantId, string Prefix, string Name, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, string Key);

/// <summary>Helpers shared by the tenancy routes.</summary>
internal static class TenancyApi
{
    public static IResult BadRequest(string message) => Results.BadRequest(new ApiError(message));

    public static IResult? ParseTenantId(string text, out Guid tenantId) =>
        Guid.TryParse(text, out tenantId) ? null : BadRequest($"id: '{text}' is not a tenant id (a UUID)");

    public static IResult UnknownTenant(string id) => Results.NotFound(new ApiError($"id: no tenant '{id}'"));
}
