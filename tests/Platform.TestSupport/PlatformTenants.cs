using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace Platform.TestSupport;

/// <summary>A tenant created for a test, with one API key.</summary>
/// <param name="Id">Tenant id.</param>
/// <param name="Name">Tenant name.</param>
/// <param name="KeyId">Key id.</param>
/// <param name="Key">The key's secret (<c>pk_…</c>), as AdminApi returned it once.</param>
public sealed record TestTenant(Guid Id, string Name, Guid KeyId, string Key);

/// <summary>Creates tenants and keys through AdminApi (the admin client must carry the admin Bearer key).</summary>
public static class PlatformTenants
{
    /// <summary>
    /// Creates a tenant allowed <paramref name="allowedModels"/> (default: every model) with the given per-key rate limit
    /// (default: effectively unlimited, so suites that are not about rate limits never hit one) and one key.
    /// </summary>
    public static async Task<TestTenant> CreateAsync(HttpClient admin, string name, IReadOnlyList<string>? allowedModels = null,
        (double RequestsPerSecond, int Burst)? rateLimit = null, object? attribution = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(admin);
        var limit = rateLimit ?? (1_000_000, 1_000_000);
        var body = new Dictionary<string, object?>
        {
            ["name"] = name,
            ["allowedModels"] = allowedModels ?? ["*"],
            ["rateLimit"] = new { requestsPerSecond = limit.RequestsPerSecond, burst = limit.Burst },
        };
        if (attribution is not null)
        {
            foreach (var property in JsonSerializer.SerializeToElement(attribution, JsonSerializerOptions.Web).EnumerateObject())
            {
                body[property.Name] = property.Value;
            }
        }

        using var created = await admin.PostAsJsonAsync("/api/tenants", body, cancellationToken);
        var tenant = await ReadAsync(created, $"create tenant {name}", cancellationToken);
        var id = tenant.GetProperty("id").GetGuid();
        var (keyId, key) = await CreateKeyAsync(admin, id, "test", null, cancellationToken);
        return new TestTenant(id, name, keyId, key);
    }

    /// <summary>Creates another key for a tenant.</summary>
    public static async Task<(Guid Id, string Key)> CreateKeyAsync(HttpClient admin, Guid tenantId, string name, DateTimeOffset? expiresAt = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(admin);
        using var response = await admin.PostAsJsonAsync($"/api/tenants/{tenantId}/keys", new { name, expiresAt }, cancellationToken);
        var key = await ReadAsync(response, $"create key for {tenantId}", cancellationToken);
        return (key.GetProperty("id").GetGuid(), key.GetProperty("key").GetString()!);
    }

    /// <summary>Sends <paramref name="key"/> as <c>Authorization: Bearer</c> on every request of <paramref name="client"/>.</summary>
    public static HttpClient WithApiKey(this HttpClient client, string key)
    {
        ArgumentNullException.ThrowIfNull(client);
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    private static async Task<JsonElement> ReadAsync(HttpResponseMessage response, string what, CancellationToken cancellationToken)
    {
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"{what}: {(int)response.StatusCode} {text}");
        }

        return JsonDocument.Parse(text).RootElement.Clone();
    }
}
