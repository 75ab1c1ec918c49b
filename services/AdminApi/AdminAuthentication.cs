using System.Security.Cryptography;
using System.Text;

namespace Platform.AdminApi;

/// <summary>
/// Admin-only access: <c>Authorization: Bearer &lt;key&gt;</c> where the key is configuration
/// <c>Parameters:admin-api-key</c> (the AppHost's secret parameter). Missing or malformed credentials are 401, a wrong
/// key is 403. Runs before any body is read, so an unauthenticated upload is refused without being streamed.
/// </summary>
internal sealed class AdminKeyFilter(IConfiguration configuration) : IEndpointFilter
{
    public const string ConfigurationKey = "Parameters:admin-api-key";

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var expected = configuration[ConfigurationKey];
        if (string.IsNullOrEmpty(expected))
        {
            return Results.Json(new ApiError($"the admin key is not configured ({ConfigurationKey})"), statusCode: StatusCodes.Status503ServiceUnavailable);
        }

        var header = http.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || header.Length <= 7)
        {
            http.Response.Headers.WWWAuthenticate = "Bearer realm=\"admin-api\"";
            return Results.Json(new ApiError("Authorization: a 'Bearer <admin key>' header is required"), statusCode: StatusCodes.Status401Unauthorized);
        }

        // Hashing first makes the comparison constant-time whatever the lengths.
        var given = SHA256.HashData(Encoding.UTF8.GetBytes(header[7..].Trim()));
        var wanted = SHA256.HashData(Encoding.UTF8.GetBytes(expected));
        if (!CryptographicOperations.FixedTimeEquals(given, wanted))
        {
            return Results.Json(new ApiError("Authorization: the key is not the admin key"), statusCode: StatusCodes.Status403Forbidden);
        }
        return await next(context);
    }
}

/// <summary>Error body of every failed request: <c>{"error": "..."}</c> (the KServe v2 shape).</summary>
/// <param name="Error">What went wrong, naming the field concerned.</param>
internal sealed record ApiError(string Error);
