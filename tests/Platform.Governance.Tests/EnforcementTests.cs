using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.TestSupport;

namespace Platform.Governance.Tests;

/// <summary>API keys, model access, rate limits and isolation, through the real InferenceApi and AdminApi.</summary>
public sealed class EnforcementTests(GovernanceFixture fixture)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task InferenceNeedsAValidKeyAndNamesWhatIsWrong()
    {
        using var anonymous = fixture.Inference();
        using var missing = await anonymous.PostAsync($"/v2/models/{GovernanceFixture.Model}/infer", GovernanceFixture.InferBody(), Ct);
        Assert.Equal(HttpStatusCode.Unauthorized, missing.StatusCode);
        Assert.Contains("Bearer", missing.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        Assert.Contains("authorization", await missing.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);

        using var forged = fixture.Inference().WithApiKey("pk_0123456789ab_" + new string('A', 43));
        using var unknown = await forged.PostAsync($"/v2/models/{GovernanceFixture.Model}/infer", GovernanceFixture.InferBody(), Ct);
        Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);

        // Health and server metadata stay open for probes; model metadata does not.
        using var live = await anonymous.GetAsync("/v2/health/live", Ct);
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        using var metadata = await anonymous.GetAsync($"/v2/models/{GovernanceFixture.Model}", Ct);
        Assert.Equal(HttpStatusCode.Unauthorized, metadata.StatusCode);
    }

    [Fact]
    public async Task BearerAndXApiKeyHeadersBothWork()
    {
        var tenant = await PlatformTenants.CreateAsync(fixture.Admin, $"headers-{Guid.NewGuid():N}"[..20], [GovernanceFixture.Model], cancellationToken: Ct);
        using var bearer = fixture.Inference().WithApiKey(tenant.Key);
        await GovernanceFixture.WaitServedAsync(bearer, GovernanceFixture.Model, Ct);

        using var plain = fixture.Inference();
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/v2/models/{GovernanceFixture.Model}/infer") { Content = GovernanceFixture.InferBody() };
        request.Headers.Add("x-api-key", tenant.Key);
        using var response = await plain.SendAsync(request, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        // Enforcement reports its own cost in Server-Timing next to the serving phases, on the same line.
        var timing = Assert.Single(response.Headers.GetValues("Server-Timing"));
        Assert.Matches(@"^read;dur=[0-9.]+, .*total;dur=[0-9.]+, auth;dur=[0-9.]+, admit;dur=[0-9.]+, record;dur=[0-9.]+$", timing);
        Assert.Contains("auth;dur=", timing, StringComparison.Ordinal);
        Assert.Contains("admit;dur=", timing, StringComparison.Ordinal);
        Assert.Contains("record;dur=", timing, StringComparison.Ordinal);
        // The phases follow one another inside the total (enforcement's included): one that also counted another's time
        // (encode the record's round trip, say) would make them add up to more than the total.
        var durations = timing.Split(", ").Select(e => e.Split(";dur=")).Where(p => p.Length == 2)
            .ToDictionary(p => p[0], p => double.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture));
        var phases = new[] { "auth", "admit", "read", "decode", "cache", "worker", "encode", "record" }.Sum(p => durations.GetValueOrDefault(p));
        Assert.True(phases <= durations["total"] + 0.01, $"the phases add up to {phases} ms, more than the total {durations["total"]} ms: {timing}");

        // The key's last use reaches AdminApi's listing (InferenceApi writes sightings every 10 s, not per request).
        var key = await Waits.UntilAsync(async () =>
        {
            var listing = await fixture.Admin.GetFromJsonAsync<JsonElement>($"/api/tenants/{tenant.Id}/keys", Ct);
            return listing.GetProperty("keys").EnumerateArray().Single(k => k.GetProperty("id").GetGuid() == tenant.KeyId);
        }, k => k.GetProperty("lastUsedAt").ValueKind != JsonValueKind.Null, TimeSpan.FromSeconds(40), "the key's last use in AdminApi's listing", Ct);
        Assert.InRange(key.GetProperty("lastUsedAt").GetDateTimeOffset(), DateTimeOffset.UtcNow.AddMinutes(-2), DateTimeOffset.UtcNow.AddSeconds(5));
    }

    [Fact]
    public async Task RevokedAndExpiredKeysAreForbidden()
    {
        var tenant = await PlatformTenants.CreateAsync(fixture.Admin, $"revoke-{Guid.NewGuid():N}"[..20], cancellationToken: Ct);
        using var client = fixture.Inference().WithApiKey(tenant.Key);
        await GovernanceFixture.WaitServedAsync(client, GovernanceFixture.Model, Ct);

        using (var revoke = await fixture.Admin.PostAsync($"/api/tenants/{tenant.Id}/keys/{tenant.KeyId}/revoke", null, Ct))
        {
            Assert.True(revoke.IsSuccessStatusCode, await revoke.Content.ReadAsStringAsync(Ct));
        }

        // Both replicas learn of the revocation through Redis pub/sub: no waiting for a cache to expire.
        for (var replica = 0; replica < 2; replica++)
        {
            using var other = fixture.Inference(replica).WithApiKey(tenant.Key);
            var (status, body) = await EventuallyAsync(other, s => s == 403, TimeSpan.FromSeconds(5), $"the revocation on replica {replica}");
            Assert.Equal(403, status);
            Assert.Contains("revoked", body, StringComparison.Ordinal);
        }

        var (_, expiring) = await PlatformTenants.CreateKeyAsync(fixture.Admin, tenant.Id, "short-lived", DateTimeOffset.UtcNow.AddSeconds(3), Ct);
        using var shortLived = fixture.Inference().WithApiKey(expiring);
        using (var before = await shortLived.PostAsync($"/v2/models/{GovernanceFixture.Model}/infer", GovernanceFixture.InferBody(), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        var (expiredStatus, expiredBody) = await EventuallyAsync(shortLived, s => s == 403, TimeSpan.FromSeconds(10), "the short-lived key's expiry");
        Assert.Equal(403, expiredStatus);
        Assert.Contains("expired", expiredBody, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ATenantCannotUseAnotherTenantsModelsOrReadItsUsage()
    {
        var a = await PlatformTenants.CreateAsync(fixture.Admin, $"iso-a-{Guid.NewGuid():N}"[..20], [GovernanceFixture.Model], cancellationToken: Ct);
        var b = await PlatformTenants.CreateAsync(fixture.Admin, $"iso-b-{Guid.NewGuid():N}"[..20], [GovernanceFixture.OtherModel], cancellationToken: Ct);
        using var clientA = fixture.Inference().WithApiKey(a.Key);
        using var clientB = fixture.Inference().WithApiKey(b.Key);
        await GovernanceFixture.WaitServedAsync(clientA, GovernanceFixture.Model, Ct);
        await GovernanceFixture.WaitServedAsync(clientB, GovernanceFixture.OtherModel, Ct);

        using var denied = await clientA.PostAsync($"/v2/models/{GovernanceFixture.OtherModel}/infer", GovernanceFixture.InferBody(), Ct);
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        Assert.Contains($"may not use model '{GovernanceFixture.OtherModel}'", await denied.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        using var deniedMetadata = await clientA.GetAsync($"/v2/models/{GovernanceFixture.OtherModel}", Ct);
        Assert.Equal(HttpStatusCode.Forbidden, deniedMetadata.StatusCode);

        // Reports: A's key sees A's usage only; B's usage and budget are refused.
        using var adminApiAsA = fixture.App.CreateHttpClient("admin-api").WithApiKey(a.Key);
        await fixture.SettledUsageAsync(a.Id, 1, Ct);
        using var own = await adminApiAsA.GetAsync($"/api/usage?tenantId={a.Id}", Ct);
        var ownBody = await own.Content.ReadAsStringAsync(Ct);
        Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        var groups = JsonDocument.Parse(ownBody).RootElement.GetProperty("groups").EnumerateArray().ToList();
        Assert.NotEmpty(groups);
        Assert.All(groups, g => Assert.Equal(a.Id, g.GetProperty("tenantId").GetGuid()));

        using var foreignUsage = await adminApiAsA.GetAsync($"/api/usage?tenantId={b.Id}", Ct);
        Assert.Equal(HttpStatusCode.Forbidden, foreignUsage.StatusCode);
        using var foreignBudget = await adminApiAsA.GetAsync($"/api/tenants/{b.Id}/budget", Ct);
        Assert.Equal(HttpStatusCode.Forbidden, foreignBudget.StatusCode);
        using var write = await adminApiAsA.PostAsJsonAsync("/api/tenants", new { name = "sneaky" }, Ct);
        Assert.Equal(HttpStatusCode.Forbidden, write.StatusCode);
    }

    [Fact]
    public async Task TheRateLimitIsExactAcrossTwoInferenceApiReplicas()
    {
        // 10 requests of burst and a refill so slow that none comes back during the test.
        var tenant = await PlatformTenants.CreateAsync(fixture.Admin, $"rate-{Guid.NewGuid():N}"[..20], rateLimit: (0.001, 10), cancellationToken: Ct);
        var warm = await PlatformTenants.CreateAsync(fixture.Admin, $"warm-{Guid.NewGuid():N}"[..20], cancellationToken: Ct);
        using (var warmClient = fixture.Inference(1).WithApiKey(warm.Key))
        {
            await GovernanceFixture.WaitServedAsync(warmClient, GovernanceFixture.Model, Ct);
        }

        using var first = fixture.Inference(0).WithApiKey(tenant.Key);
        using var second = fixture.Inference(1).WithApiKey(tenant.Key);
        var responses = await Task.WhenAll(Enumerable.Range(0, 30).Select(async i =>
        {
            using var response = await (i % 2 == 0 ? first : second).PostAsync($"/v2/models/{GovernanceFixture.Model}/infer", GovernanceFixture.InferBody($"rate-{i}"), Ct);
            return ((int)response.StatusCode, response.Headers.RetryAfter?.Delta, await response.Content.ReadAsStringAsync(Ct));
        }));

        Assert.Equal(10, responses.Count(r => r.Item1 == 200));
        var limited = responses.Where(r => r.Item1 == 429).ToList();
        Assert.Equal(20, limited.Count);
        Assert.All(limited, r =>
        {
            Assert.NotNull(r.Item2);
            Assert.True(r.Item2 >= TimeSpan.FromSeconds(1));
            Assert.Contains("rate limit", r.Item3, StringComparison.Ordinal);
        });

        // Every attempt, allowed or not, is one usage record.
        var usage = await fixture.SettledUsageAsync(tenant.Id, 30, Ct);
        Assert.Equal(30, usage.Count);
        Assert.Equal(10, usage.Count(u => u.Status == 200));
        Assert.Equal(20, usage.Count(u => u.Status == 429));
    }

    private static Task<(int Status, string Body)> EventuallyAsync(HttpClient client, Func<int, bool> until, TimeSpan within, string what) =>
        Waits.UntilAsync(async () =>
        {
            using var response = await client.PostAsync($"/v2/models/{GovernanceFixture.Model}/infer", GovernanceFixture.InferBody(), Ct);
            return (Status: (int)response.StatusCode, Body: await response.Content.ReadAsStringAsync(Ct));
        }, r => until(r.Status), within, what, Ct);
}
