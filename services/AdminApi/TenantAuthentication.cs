using System.Security.Cryptography;
using System.Text;
using Platform.Tenancy;
using Platform.Tenancy.Enforcement;

namespace Platform.AdminApi;

/// <summary>Who called a read route open to tenants: the admin (<see cref="Tenant"/> null) or a tenant's key.</summary>
/// <param name="Tenant">The key's tenant; null for the admin key.</param>
internal sealed record ApiCaller(Tenant? Tenant)
{
    private static readonly object ItemKey = new();

    /// <summary>Whether the admin key was presented.</summary>
    public bool IsAdmin => Tenant is null;

    /// <summary>The caller <see cref="AdminOrTenantKeyFilter"/> stored on the request.</summary>
    public static ApiCaller Of(HttpContext context) =>
        context.Items[ItemKey] as ApiCaller ?? throw new InvalidOperationException("The route is missing AdminOrTenantKeyFilter.");

    /// <summary>Stores the caller on the request.</summary>
    public void Attach(HttpContext context) => context.Items[ItemKey] = this;

    /// <summary>Null when the caller may read <paramref name="tenantId"/>'s data; otherwise the 403 to answer.</summary>
    public IResult? Forbids(Guid tenantId) =>
        Tenant is null || Tenant.Id == tenantId
            ? null
            : Results.Json(new ApiError($"tenant: this key belongs to tenant '{Tenant.Name}' and cannot read tenant '{tenantId}'"),
                statusCode: StatusCodes.Status403Forbidden);
}

/// <summary>
/// Read routes open to the admin key or a tenant's API key (<c>Authorization: Bearer pk_…</c> or <c>x-api-key: pk_…</c>),
/// checked with the same <see cref="TenantDirectory"/> InferenceApi uses: no credentials or an unknown key 401, a revoked
/// or expired key 403. The endpoint then limits a tenant key to its own tenant (<see cref="ApiCaller.Forbids"/>).
/// </summary>
internal sealed class AdminOrTenantKeyFilter(IConfiguration configuration, TenantDirectory directory) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var presented = Presented(http.Request);
        if (presented is null)
        {
            http.Response.Headers.WWWAuthenticate = "Bearer realm=\"admin-api\"";
            return Results.Json(new ApiError("Authorization: a 'Bearer <admin key or API key>' or 'x-api-key: <API key>' header is required"),
                statusCode: StatusCodes.Status401Unauthorized);
        }

        if (IsAdminKey(presented))
        {
            new ApiCaller(null).Attach(http);
            return await next(context);
        }

        var authentication = await directory.AuthenticateAsync(presented, http.RequestAborted);
        switch (authentication.Status)
        {
            case KeyStatus.Active:
                new ApiCaller(authentication.Context!.Tenant).Attach(http);
                return await next(context);
            case KeyStatus.Revoked:
                return Results.Json(new ApiError($"Authorization: key {authentication.Prefix} was revoked"), statusCode: StatusCodes.Status403Forbidden);
            case KeyStatus.Expired:
                return Results.Json(new ApiError($"Authorization: key {authentication.Prefix} has expired"), statusCode: StatusCodes.Status403Forbidden);
            default:
                http.Response.Headers.WWWAuthenticate = "Bearer realm=\"admin-api\", error=\"invalid_token\"";
                return Results.Json(new ApiError("Authorization: unknown key"), statusCode: StatusCodes.Status401Unauthorized);
        }
    }

    private static string? Presented(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && header.Length > 7)
        {
            return header[7..].Trim();
        }

        var apiKey = request.Headers["x-api-key"].ToString().Trim();
        return apiKey.Length > 0 ? apiKey : null;
    }

    private bool IsAdminKey(string presented)
    {
        var expected = configuration[AdminKeyFilter.ConfigurationKey];
        if (string.IsNullOrEmpty(expected))
        {
            return false;
        }

        // Hashing first makes the comparison constant-time whatever the lengths.
        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), SHA256.HashData(Encoding.UTF8.GetBytes(expected)));
    }
}
