using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Platform.Tenancy;
using Platform.Tenancy.Enforcement;
using Platform.TestSupport;
using StackExchange.Redis;

namespace Platform.Registry.Tests;

/// <summary>AdminApi's tenancy API (tenants, keys, budgets, prices, usage) against the whole running platform.</summary>
public sealed class TenantApiTests(PlatformFixture platform)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task TenantsAreCreatedListedReadPatchedAndDeleted()
    {
        var name = Unique("acme");
        using var created = await SendAsync(HttpMethod.Post, "/api/tenants", new
        {
            name,
            team = "search",
            project = "ranking",
            customer = "cust-42",
            costCenter = "cc-7",
            environment = "prod",
            allowedModels = new[] { "embedder", "ranker", "embedder" },
            rateLimit = new { requestsPerSecond = 5.5, burst = 11 },
        });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var tenant = await Json(created);
        var id = tenant.GetProperty("id").GetGuid();
        Assert.Equal($"/api/tenants/{id}", created.Headers.Location?.OriginalString);
        Assert.Equal(name, tenant.GetProperty("name").GetString());
        Assert.Equal("search", tenant.GetProperty("team").GetString());
        Assert.Equal("ranking", tenant.GetProperty("project").GetString());
        Assert.Equal("cust-42", tenant.GetProperty("customer").GetString());
        Assert.Equal("cc-7", tenant.GetProperty("costCenter").GetString());
        Assert.Equal("prod", tenant.GetProperty("environment").GetString());
        Assert.Equal(["embedder", "ranker"], Strings(tenant.GetProperty("allowedModels")));
        Assert.Equal(5.5, tenant.GetProperty("rateLimit").GetProperty("requestsPerSecond").GetDouble());
        Assert.Equal(11, tenant.GetProperty("rateLimit").GetProperty("burst").GetInt32());

        using (var get = await platform.Admin.GetAsync($"/api/tenants/{id}", Ct))
        {
            Assert.Equal(HttpStatusCode.OK, get.StatusCode);
            Assert.Equal(tenant.ToString(), (await Json(get)).ToString());
        }

        using (var list = await platform.Admin.GetAsync("/api/tenants", Ct))
        {
            Assert.Contains((await Json(list)).GetProperty("tenants").EnumerateArray(), t => t.GetProperty("id").GetGuid() == id);
        }

        using (var duplicate = await SendAsync(HttpMethod.Post, "/api/tenants", new { name }))
        {
            Assert.Equal(HttpStatusCode.Conflict, duplicate.StatusCode);
            Assert.StartsWith("name: ", await ErrorOf(duplicate), StringComparison.Ordinal);
        }

        // Only the fields sent change; null clears an attribute; rateLimit: null goes back to the platform default.
        using (var patched = await SendAsync(HttpMethod.Patch, $"/api/tenants/{id}", new { team = "platform", customer = (string?)null, allowedModels = new[] { "*" } }))
        {
            Assert.Equal(HttpStatusCode.OK, patched.StatusCode);
            var body = await Json(patched);
            Assert.Equal(name, body.GetProperty("name").GetString());
            Assert.Equal("platform", body.GetProperty("team").GetString());
            Assert.Equal("ranking", body.GetProperty("project").GetString());
            Assert.Equal(JsonValueKind.Null, body.GetProperty("customer").ValueKind);
            Assert.Equal(["*"], Strings(body.GetProperty("allowedModels")));
            Assert.Equal(11, body.GetProperty("rateLimit").GetProperty("burst").GetInt32());
            Assert.True(body.GetProperty("updatedAt").GetDateTimeOffset() >= tenant.GetProperty("updatedAt").GetDateTimeOffset());
        }

        using (var reset = await SendAsync(HttpMethod.Patch, $"/api/tenants/{id}", """{"rateLimit": null}"""))
        {
            Assert.Equal(HttpStatusCode.OK, reset.StatusCode);
            Assert.Equal(JsonValueKind.Null, (await Json(reset)).GetProperty("rateLimit").ValueKind);
            Assert.Equal("platform", (await Json(reset)).GetProperty("team").GetString());
        }

        var other = await CreateTenantAsync();
        using (var rename = await SendAsync(HttpMethod.Patch, $"/api/tenants/{id}", new { name = other.Name }))
        {
            Assert.Equal(HttpStatusCode.Conflict, rename.StatusCode);
        }

        // Keys and budget go with the tenant; usage records stay for the reports.
        using (var key = await SendAsync(HttpMethod.Post, $"/api/tenants/{id}/keys", new { name = "ci" }))
        {
            Assert.Equal(HttpStatusCode.Created, key.StatusCode);
        }

        using (var budget = await SendAsync(HttpMethod.Put, $"/api/tenants/{id}/budget", new { period = "daily", limit = 5, currency = "USD" }))
        {
            Assert.Equal(HttpStatusCode.OK, budget.StatusCode);
        }

        await InsertUsageAsync(new UsageRow(id, Unique("m"), 200, 0.5m, "USD", DateTimeOffset.UtcNow.AddMinutes(-1)));
        using (var deleted = await platform.Admin.DeleteAsync($"/api/tenants/{id}", Ct))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        Assert.Equal(0L, await ScalarAsync("SELECT count(*) FROM api_keys WHERE tenant_id = $1", id));
        Assert.Equal(0L, await ScalarAsync("SELECT count(*) FROM tenant_budgets WHERE tenant_id = $1", id));
        Assert.Equal(1L, await ScalarAsync("SELECT count(*) FROM usage_records WHERE tenant_id = $1", id));
        using (var gone = await platform.Admin.GetAsync($"/api/tenants/{id}", Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
            Assert.Equal($"id: no tenant '{id}'", await ErrorOf(gone));
        }

        using (var again = await platform.Admin.DeleteAsync($"/api/tenants/{id}", Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
        }

        // The usage of a deleted tenant is still reported, without a name.
        using var usage = await platform.Admin.GetAsync($"/api/usage?tenantId={id}", Ct);
        var group = Assert.Single((await Json(usage)).GetProperty("groups").EnumerateArray());
        Assert.Equal(JsonValueKind.Null, group.GetProperty("tenantName").ValueKind);
        Assert.Equal(1, group.GetProperty("requests").GetInt64());
    }

    [Theory]
    [InlineData("", "body: ")]
    [InlineData("not json", "body: ")]
    [InlineData("[1]", "body: ")]
    [InlineData("{}", "name: ")]
    [InlineData("""{"name": "has space"}""", "name: ")]
    [InlineData("""{"name": "-leading-dash"}""", "name: ")]
    [InlineData("""{"name": 7}""", "name: ")]
    [InlineData("""{"name": "ok", "team": ""}""", "team: ")]
    [InlineData("""{"name": "ok", "environment": 3}""", "environment: ")]
    [InlineData("""{"name": "ok", "teem": "typo"}""", "teem: ")]
    [InlineData("""{"name": "ok", "allowedModels": "m"}""", "allowedModels: ")]
    [InlineData("""{"name": "ok", "allowedModels": ["fine", "not/fine"]}""", "allowedModels[1]: ")]
    [InlineData("""{"name": "ok", "allowedModels": [1]}""", "allowedModels[0]: ")]
    [InlineData("""{"name": "ok", "rateLimit": 5}""", "rateLimit: ")]
    [InlineData("""{"name": "ok", "rateLimit": {"requestsPerSecond": 0, "burst": 5}}""", "rateLimit.requestsPerSecond: ")]
    [InlineData("""{"name": "ok", "rateLimit": {"requestsPerSecond": 5, "burst": 0}}""", "rateLimit.burst: ")]
    [InlineData("""{"name": "ok", "rateLimit": {"requestsPerSecond": 5, "burst": 1.5}}""", "rateLimit.burst: ")]
    [InlineData("""{"name": "ok", "rateLimit": {"requestsPerSecond": 5}}""", "rateLimit.burst: ")]
    public async Task InvalidTenantsAreRefusedNamingTheField(string body, string field)
    {
        using var response = await SendAsync(HttpMethod.Post, "/api/tenants", body);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith(field, await ErrorOf(response), StringComparison.Ordinal);
    }

    [Fact]
    public async Task LongNamesAndLabelsAndBadIdsAreRefusedNamingTheField()
    {
        await AssertBadRequestAsync(await SendAsync(HttpMethod.Post, "/api/tenants", new { name = new string('a', 65) }), "name: ");
        await AssertBadRequestAsync(await SendAsync(HttpMethod.Post, "/api/tenants", new { name = Unique("t"), costCenter = new string('c', 129) }), "costCenter: ");
        await AssertBadRequestAsync(await platform.Admin.GetAsync("/api/tenants/not-a-uuid", Ct), "id: ");
        await AssertBadRequestAsync(await SendAsync(HttpMethod.Patch, "/api/tenants/not-a-uuid", new { team = "x" }), "id: ");
        var tenant = await CreateTenantAsync();
        await AssertBadRequestAsync(await SendAsync(HttpMethod.Patch, $"/api/tenants/{tenant.Id}", new { name = (string?)null }), "name: ");
        await AssertBadRequestAsync(await SendAsync(HttpMethod.Patch, $"/api/tenants/{tenant.Id}", new { rateLimit = new { requestsPerSecond = -1, burst = 3 } }), "rateLimit.requestsPerSecond: ");

        using var unknown = await SendAsync(HttpMethod.Patch, $"/api/tenants/{Guid.NewGuid()}", new { team = "x" });
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
    }

    [Fact]
    public async Task AKeysSecretIsShownOnceAndOnlyItsSaltedHashIsStored()
    {
        var tenant = await CreateTenantAsync();
        using var created = await SendAsync(HttpMethod.Post, $"/api/tenants/{tenant.Id}/keys", new { name = "ci pipeline" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var body = await Json(created);
        var keyId = body.GetProperty("id").GetGuid();
        var plaintext = body.GetProperty("key").GetString()!;
        var prefix = body.GetProperty("prefix").GetString()!;
        Assert.Equal($"/api/tenants/{tenant.Id}/keys/{keyId}", created.Headers.Location?.OriginalString);
        Assert.Equal(tenant.Id, body.GetProperty("tenantId").GetGuid());
        Assert.Equal("ci pipeline", body.GetProperty("name").GetString());
        Assert.True(ApiKeys.TryParse(plaintext, out var parsedPrefix, out var secret), plaintext);
        Assert.Equal(prefix, parsedPrefix);

        using (var second = await SendAsync(HttpMethod.Post, $"/api/tenants/{tenant.Id}/keys", ""))
        {
            Assert.Equal(HttpStatusCode.Created, second.StatusCode);
        }

        // Listing by prefix (the bare prefix, its start, or as the key starts) finds exactly that key, never its secret.
        foreach (var query in new[] { prefix, prefix[..5], $"pk_{prefix}", plaintext })
        {
            using var listed = await platform.Admin.GetAsync($"/api/tenants/{tenant.Id}/keys?prefix={Uri.EscapeDataString(query)}", Ct);
            Assert.Equal(HttpStatusCode.OK, listed.StatusCode);
            var text = await listed.Content.ReadAsStringAsync(Ct);
            Assert.DoesNotContain(secret, text, StringComparison.Ordinal);
            var key = Assert.Single(JsonDocument.Parse(text).RootElement.GetProperty("keys").EnumerateArray());
            Assert.Equal(keyId, key.GetProperty("id").GetGuid());
            Assert.Equal("active", key.GetProperty("state").GetString());
            Assert.Equal(
                ["createdAt", "expiresAt", "id", "lastUsedAt", "name", "prefix", "revokedAt", "state", "tenantId"],
                key.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        }

        using (var all = await platform.Admin.GetAsync($"/api/tenants/{tenant.Id}/keys", Ct))
        {
            Assert.Equal(2, (await Json(all)).GetProperty("keys").GetArrayLength());
        }

        await AssertBadRequestAsync(await platform.Admin.GetAsync($"/api/tenants/{tenant.Id}/keys?prefix=xyz", Ct), "prefix: ");

        // The row holds the prefix, a salt and SHA-256(salt + secret): nothing from which the key could be read back.
        await using (var command = platform.Database.CreateCommand("SELECT prefix, salt, hash, row_to_json(k)::text FROM api_keys k WHERE id = $1"))
        {
            command.Parameters.AddWithValue(keyId);
            await using var reader = await command.ExecuteReaderAsync(Ct);
            Assert.True(await reader.ReadAsync(Ct));
            Assert.Equal(prefix, reader.GetString(0));
            var salt = reader.GetFieldValue<byte[]>(1);
            var hash = reader.GetFieldValue<byte[]>(2);
            Assert.Equal(16, salt.Length);
            Assert.True(ApiKeys.Verify(secret, salt, hash));
            var row = reader.GetString(3);
            Assert.DoesNotContain(secret, row, StringComparison.Ordinal);
            Assert.DoesNotContain(plaintext, row, StringComparison.Ordinal);
            Assert.DoesNotContain(Convert.ToHexStringLower(Encoding.ASCII.GetBytes(secret)), row, StringComparison.Ordinal);
        }

        // Revoking is idempotent: the second call answers the same revocation time.
        using var revoked = await platform.Admin.PostAsync($"/api/tenants/{tenant.Id}/keys/{keyId}/revoke", null, Ct);
        Assert.Equal(HttpStatusCode.OK, revoked.StatusCode);
        var revokedBody = await Json(revoked);
        Assert.Equal("revoked", revokedBody.GetProperty("state").GetString());
        var revokedAt = revokedBody.GetProperty("revokedAt").GetDateTimeOffset();
        using var again = await platform.Admin.DeleteAsync($"/api/tenants/{tenant.Id}/keys/{keyId}", Ct);
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal(revokedAt, (await Json(again)).GetProperty("revokedAt").GetDateTimeOffset());
        using (var listed = await platform.Admin.GetAsync($"/api/tenants/{tenant.Id}/keys?prefix={prefix}", Ct))
        {
            Assert.Equal("revoked", (await Json(listed)).GetProperty("keys")[0].GetProperty("state").GetString());
        }

        using (var unknownKey = await platform.Admin.PostAsync($"/api/tenants/{tenant.Id}/keys/{Guid.NewGuid()}/revoke", null, Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknownKey.StatusCode);
            Assert.StartsWith("keyId: ", await ErrorOf(unknownKey), StringComparison.Ordinal);
        }

        // Another tenant's key id is not found under this tenant.
        var other = await CreateTenantAsync();
        using (var foreign = await platform.Admin.PostAsync($"/api/tenants/{other.Id}/keys/{keyId}/revoke", null, Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
        }

        using (var unknownTenant = await SendAsync(HttpMethod.Post, $"/api/tenants/{Guid.NewGuid()}/keys", new { name = "x" }))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknownTenant.StatusCode);
            Assert.StartsWith("id: ", await ErrorOf(unknownTenant), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task KeysExpireAndAreListedAsExpired()
    {
        var tenant = await CreateTenantAsync();
        await AssertBadRequestAsync(await SendAsync(HttpMethod.Post, $"/api/tenants/{tenant.Id}/keys", new { expiresAt = DateTimeOffset.UtcNow.AddMinutes(-1) }), "expiresAt: ");
        await AssertBadRequestAsync(await SendAsync(HttpMethod.Post, $"/api/tenants/{tenant.Id}/keys", new { expiresAt = "tomorrow" }), "expiresAt: ");
        await AssertBadRequestAsync(await SendAsync(HttpMethod.Post, $"/api/tenants/{tenant.Id}/keys", new { name = "x", secret = "mine" }), "secret: ");

        var expiresAt = DateTimeOffset.UtcNow.AddSeconds(2);
        var key = await CreateKeyAsync(tenant.Id, expiresAt);
        using (var client = TenantClient(key.Plaintext))
        using (var before = await client.GetAsync($"/api/usage?tenantId={tenant.Id}", Ct))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        // Expiry is judged by AdminApi's clock, this machine's real one: the key's expiry can only be waited out.
        await Task.Delay(expiresAt - DateTimeOffset.UtcNow + TimeSpan.FromMilliseconds(300), Ct);
        using (var listed = await platform.Admin.GetAsync($"/api/tenants/{tenant.Id}/keys", Ct))
        {
            var entry = Assert.Single((await Json(listed)).GetProperty("keys").EnumerateArray());
            Assert.Equal("expired", entry.GetProperty("state").GetString());
            Assert.Equal(expiresAt.ToUnixTimeMilliseconds(), entry.GetProperty("expiresAt").GetDateTimeOffset().ToUnixTimeMilliseconds());
        }

        using (var client = TenantClient(key.Plaintext))
        using (var after = await client.GetAsync($"/api/usage?tenantId={tenant.Id}", Ct))
        {
            Assert.Equal(HttpStatusCode.Forbidden, after.StatusCode);
            Assert.Contains("expired", await ErrorOf(after), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task BudgetsAreSetReadWithRecordedSpendingAndDeleted()
    {
        var tenant = await CreateTenantAsync();
        using (var none = await platform.Admin.GetAsync($"/api/tenants/{tenant.Id}/budget", Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, none.StatusCode);
            Assert.Equal($"budget: tenant '{tenant.Name}' has no budget", await ErrorOf(none));
        }

        // Spending recorded before the budget existed counts: the counter is seeded from Postgres. Only the budget's
        // currency counts, and only this period.
        var now = DateTimeOffset.UtcNow;
        var (start, end) = BudgetPeriods.Bounds(BudgetPeriods.Monthly, now);
        var model = Unique("priced");
        await InsertUsageAsync(
            new UsageRow(tenant.Id, model, 200, 2.5m, "USD", now.AddSeconds(-5)),
            new UsageRow(tenant.Id, model, 500, 1.25m, "USD", now.AddSeconds(-4)),
            new UsageRow(tenant.Id, model, 200, 100m, "EUR", now.AddSeconds(-3)),
            new UsageRow(tenant.Id, model, 200, 1000m, "USD", start.AddDays(-1)));
        var thisPeriod = await InsertEventAsync(tenant.Id, BudgetEventKinds.Soft, 0.25, start, 3.75m, 10m, now.AddSeconds(-2));
        await InsertEventAsync(tenant.Id, BudgetEventKinds.Exhausted, 1, start.AddMonths(-1), 10m, 10m, start.AddDays(-1));

        using var put = await SendAsync(HttpMethod.Put, $"/api/tenants/{tenant.Id}/budget",
            new { period = "monthly", limit = 10, currency = "USD", softThresholds = new[] { 0.25, 0.9 } });
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        var status = await Json(put);
        Assert.Equal(tenant.Id, status.GetProperty("tenantId").GetGuid());
        Assert.Equal("monthly", status.GetProperty("period").GetString());
        Assert.Equal(10m, status.GetProperty("limit").GetDecimal());
        Assert.Equal("USD", status.GetProperty("currency").GetString());
        Assert.Equal([0.25, 0.9], status.GetProperty("softThresholds").EnumerateArray().Select(t => t.GetDouble()));
        Assert.Equal(start, status.GetProperty("periodStart").GetDateTimeOffset());
        Assert.Equal(end, status.GetProperty("resetsAt").GetDateTimeOffset());
        Assert.Equal(3.75m, status.GetProperty("spent").GetDecimal());
        Assert.Equal(6.25m, status.GetProperty("remaining").GetDecimal());
        Assert.Equal(0.375, status.GetProperty("usedRatio").GetDouble(), 9);
        Assert.False(status.GetProperty("exhausted").GetBoolean());
        var e = Assert.Single(status.GetProperty("events").EnumerateArray());
        Assert.Equal(thisPeriod, e.GetProperty("id").GetGuid());
        Assert.Equal("soft", e.GetProperty("kind").GetString());
        Assert.Equal(0.25, e.GetProperty("threshold").GetDouble());
        Assert.Equal(3.75m, e.GetProperty("spent").GetDecimal());

        using (var get = await platform.Admin.GetAsync($"/api/tenants/{tenant.Id}/budget", Ct))
        {
            Assert.Equal(HttpStatusCode.OK, get.StatusCode);
            Assert.Equal(3.75m, (await Json(get)).GetProperty("spent").GetDecimal());
        }

        // Without thresholds the schema's default (80 %, 95 %) applies; a new period resets the counter's meaning.
        using (var daily = await SendAsync(HttpMethod.Put, $"/api/tenants/{tenant.Id}/budget", new { period = "daily", limit = 20.5, currency = "USD" }))
        {
            var body = await Json(daily);
            Assert.Equal(HttpStatusCode.OK, daily.StatusCode);
            Assert.Equal([0.8, 0.95], body.GetProperty("softThresholds").EnumerateArray().Select(t => t.GetDouble()));
            Assert.Equal(BudgetPeriods.Bounds(BudgetPeriods.Daily, DateTimeOffset.UtcNow).Start, body.GetProperty("periodStart").GetDateTimeOffset());
            Assert.Equal(20.5m, body.GetProperty("limit").GetDecimal());
        }

        using (var deleted = await platform.Admin.DeleteAsync($"/api/tenants/{tenant.Id}/budget", Ct))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        using (var gone = await platform.Admin.GetAsync($"/api/tenants/{tenant.Id}/budget", Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        }

        using (var unknown = await SendAsync(HttpMethod.Put, $"/api/tenants/{Guid.NewGuid()}/budget", new { period = "daily", limit = 1, currency = "USD" }))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        }
    }

    [Theory]
    [InlineData("""{"limit": 10, "currency": "USD"}""", "period: ")]
    [InlineData("""{"period": "weekly", "limit": 10, "currency": "USD"}""", "period: ")]
    [InlineData("""{"period": "daily", "currency": "USD"}""", "limit: ")]
    [InlineData("""{"period": "daily", "limit": 0, "currency": "USD"}""", "limit: ")]
    [InlineData("""{"period": "daily", "limit": -5, "currency": "USD"}""", "limit: ")]
    [InlineData("""{"period": "daily", "limit": "10", "currency": "USD"}""", "limit: ")]
    [InlineData("""{"period": "daily", "limit": 1e12, "currency": "USD"}""", "limit: ")]
    [InlineData("""{"period": "daily", "limit": 0.0000000001, "currency": "USD"}""", "limit: ")]
    [InlineData("""{"period": "daily", "limit": 10}""", "currency: ")]
    [InlineData("""{"period": "daily", "limit": 10, "currency": "usd"}""", "currency: ")]
    [InlineData("""{"period": "daily", "limit": 10, "currency": "DOLLARS"}""", "currency: ")]
    [InlineData("""{"period": "daily", "limit": 10, "currency": "USD", "softThresholds": [0.9, 0.8]}""", "softThresholds[1]: ")]
    [InlineData("""{"period": "daily", "limit": 10, "currency": "USD", "softThresholds": [0.5, 1]}""", "softThresholds[1]: ")]
    [InlineData("""{"period": "daily", "limit": 10, "currency": "USD", "softThresholds": [0]}""", "softThresholds[0]: ")]
    [InlineData("""{"period": "daily", "limit": 10, "currency": "USD", "softThresholds": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}""", "softThresholds: ")]
    [InlineData("""{"period": "daily", "limit": 10, "currency": "USD", "softThresholds": 0.8}""", "softThresholds: ")]
    [InlineData("""{"period": "daily", "limit": 10, "currency": "USD", "hard": true}""", "hard: ")]
    public async Task InvalidBudgetsAreRefusedNamingTheField(string body, string field)
    {
        var tenant = await CreateTenantAsync();
        using var response = await SendAsync(HttpMethod.Put, $"/api/tenants/{tenant.Id}/budget", body);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith(field, await ErrorOf(response), StringComparison.Ordinal);
        Assert.Equal(0L, await ScalarAsync("SELECT count(*) FROM tenant_budgets WHERE tenant_id = $1", tenant.Id));
    }

    [Fact]
    public async Task ChargesThroughTheLedgerShowInTheBudgetAtOnceAndReachPostgresThroughTheUsageWriter()
    {
        var tenant = await CreateTenantAsync();
        using (var put = await SendAsync(HttpMethod.Put, $"/api/tenants/{tenant.Id}/budget", new { period = "monthly", limit = 10, currency = "USD", softThresholds = new[] { 0.5 } }))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
            Assert.Equal(0m, (await Json(put)).GetProperty("spent").GetDecimal());
        }

        // What InferenceApi does after answering: one ledger call appends the record and charges the budget.
        await using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(platform.RedisConnectionString);
        var ledger = new UsageLedger(redis, platform.Database, TimeProvider.System);
        var budget = new Budget(tenant.Id, BudgetPeriods.Monthly, 10m, "USD", [0.5], DateTimeOffset.UtcNow);
        var model = Unique("ledger");
        var first = await ledger.RecordAsync(Record(tenant.Id, model, 200, 6m, 12), budget, Ct);
        Assert.Equal(BudgetEventKinds.Soft, Assert.Single(first.Crossed).Kind);
        var second = await ledger.RecordAsync(Record(tenant.Id, model, 200, 5m, 3), budget, Ct);
        Assert.Equal(BudgetEventKinds.Exhausted, Assert.Single(second.Crossed).Kind);

        using (var get = await platform.Admin.GetAsync($"/api/tenants/{tenant.Id}/budget", Ct))
        {
            var status = await Json(get);
            Assert.Equal(11m, status.GetProperty("spent").GetDecimal());
            Assert.Equal(0m, status.GetProperty("remaining").GetDecimal());
            Assert.True(status.GetProperty("exhausted").GetBoolean());
            Assert.Equal(1.1, status.GetProperty("usedRatio").GetDouble(), 9);
        }

        // AdminApi's usage writer moves both records and both events into Postgres.
        var events = await EventuallyAsync(async () =>
        {
            using var get = await platform.Admin.GetAsync($"/api/tenants/{tenant.Id}/budget", Ct);
            var list = (await Json(get)).GetProperty("events").EnumerateArray().ToArray();
            return list.Length == 2 ? list : null;
        }, "both budget events in Postgres");
        Assert.Equal(["soft", "exhausted"], events.Select(e => e.GetProperty("kind").GetString()));
        Assert.Equal([0.5, 1.0], events.Select(e => e.GetProperty("threshold").GetDouble()));
        Assert.Equal([6m, 11m], events.Select(e => e.GetProperty("spent").GetDecimal()));

        var usage = (await EventuallyAsync(async () =>
        {
            using var get = await platform.Admin.GetAsync($"/api/usage?tenantId={tenant.Id}&groupBy=tenant", Ct);
            var body = await Json(get);
            return body.GetProperty("total").GetProperty("requests").GetInt64() == 2 ? new[] { body } : null;
        }, "both usage records in the report"))[0];
        var group = Assert.Single(usage.GetProperty("groups").EnumerateArray());
        Assert.Equal(11m, group.GetProperty("cost").GetDecimal());
        Assert.Equal(15, group.GetProperty("inputElements").GetInt64());
        Assert.Equal(tenant.Name, group.GetProperty("tenantName").GetString());
    }

    [Fact]
    public async Task PricesAreSetReadListedAndDeleted()
    {
        var model = Unique("price");
        using (var missing = await platform.Admin.GetAsync($"/api/prices/{model}", Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
            Assert.StartsWith("model: ", await ErrorOf(missing), StringComparison.Ordinal);
        }

        using var put = await SendAsync(HttpMethod.Put, $"/api/prices/{model}", new { per1kInferences = 0.4, currency = "USD" });
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        var price = await Json(put);
        Assert.Equal(model, price.GetProperty("model").GetString());
        Assert.Equal(0.4m, price.GetProperty("per1kInferences").GetDecimal());
        Assert.Equal(0m, price.GetProperty("perInputElement").GetDecimal());
        Assert.Equal("USD", price.GetProperty("currency").GetString());

        using (var update = await SendAsync(HttpMethod.Put, $"/api/prices/{model}", new { per1kInferences = 1, perInputElement = 0.000000000001, currency = "EUR" }))
        {
            Assert.Equal(HttpStatusCode.OK, update.StatusCode);
            var body = await Json(update);
            Assert.Equal(1m, body.GetProperty("per1kInferences").GetDecimal());
            Assert.Equal(0.000000000001m, body.GetProperty("perInputElement").GetDecimal());
            Assert.Equal("EUR", body.GetProperty("currency").GetString());
        }

        using (var get = await platform.Admin.GetAsync($"/api/prices/{model}", Ct))
        {
            Assert.Equal("EUR", (await Json(get)).GetProperty("currency").GetString());
        }

        using (var list = await platform.Admin.GetAsync("/api/prices", Ct))
        {
            var entry = Assert.Single((await Json(list)).GetProperty("prices").EnumerateArray(), p => p.GetProperty("model").GetString() == model);
            Assert.Equal(1m, entry.GetProperty("per1kInferences").GetDecimal());
        }

        using (var deleted = await platform.Admin.DeleteAsync($"/api/prices/{model}", Ct))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        using (var gone = await platform.Admin.GetAsync($"/api/prices/{model}", Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        }

        using (var again = await platform.Admin.DeleteAsync($"/api/prices/{model}", Ct))
        {
            Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
        }
    }

    [Theory]
    [InlineData("""{"currency": "USD"}""", "per1kInferences: ")]
    [InlineData("""{"per1kInferences": 0, "perInputElement": 0, "currency": "USD"}""", "per1kInferences: ")]
    [InlineData("""{"per1kInferences": -1, "currency": "USD"}""", "per1kInferences: ")]
    [InlineData("""{"perInputElement": -0.1, "currency": "USD"}""", "perInputElement: ")]
    [InlineData("""{"perInputElement": 1e-16, "currency": "USD"}""", "perInputElement: ")]
    [InlineData("""{"per1kInferences": 1}""", "currency: ")]
    [InlineData("""{"per1kInferences": 1, "currency": "Usd"}""", "currency: ")]
    [InlineData("""{"per1kInferences": 1, "currency": "USD", "perToken": 1}""", "perToken: ")]
    [InlineData("""{"per1kInferences": "1", "currency": "USD"}""", "per1kInferences: ")]
    public async Task InvalidPricesAreRefusedNamingTheField(string body, string field)
    {
        var model = Unique("bad-price");
        using var response = await SendAsync(HttpMethod.Put, $"/api/prices/{model}", body);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith(field, await ErrorOf(response), StringComparison.Ordinal);
        Assert.Equal(0L, await ScalarAsync("SELECT count(*) FROM model_prices WHERE model = $1", model));
    }

    [Fact]
    public async Task AnInvalidModelNameInAPriceRouteIsRefused()
    {
        using var response = await SendAsync(HttpMethod.Put, "/api/prices/-dash", new { per1kInferences = 1, currency = "USD" });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith("model: ", await ErrorOf(response), StringComparison.Ordinal);
    }

    [Fact]
    public async Task EveryWriteIsAnnouncedSoReplicasDropTheirCaches()
    {
        await using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(platform.RedisConnectionString);
        var messages = new ConcurrentQueue<string>();
        var database = redis.GetDatabase();
        await database.Multiplexer.GetSubscriber().SubscribeAsync(RedisChannel.Literal(TenancyChannels.Changes), (_, message) => messages.Enqueue((string)message!));

        var tenant = await CreateTenantAsync();
        var key = await CreateKeyAsync(tenant.Id, null);
        using (var patch = await SendAsync(HttpMethod.Patch, $"/api/tenants/{tenant.Id}", new { team = "x" }))
        {
            Assert.Equal(HttpStatusCode.OK, patch.StatusCode);
        }

        using (var budget = await SendAsync(HttpMethod.Put, $"/api/tenants/{tenant.Id}/budget", new { period = "daily", limit = 1, currency = "USD" }))
        {
            Assert.Equal(HttpStatusCode.OK, budget.StatusCode);
        }

        using (var revoke = await platform.Admin.PostAsync($"/api/tenants/{tenant.Id}/keys/{key.Id}/revoke", null, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, revoke.StatusCode);
        }

        using (var price = await SendAsync(HttpMethod.Put, $"/api/prices/{Unique("announce")}", new { per1kInferences = 1, currency = "USD" }))
        {
            Assert.Equal(HttpStatusCode.OK, price.StatusCode);
        }

        // create, key, patch, budget, revoke: five for the tenant; then "*" for the price.
        var id = tenant.Id.ToString();
        var received = await EventuallyAsync(() =>
        {
            var seen = messages.ToArray();
            return Task.FromResult(seen.Count(m => m == id) >= 5 && seen.SkipWhile(m => m != id).Skip(4).Contains("*") ? seen : null);
        }, "the tenant's five announcements, then the price's");
        Assert.Equal(5, received.Count(m => m == id));
    }

    [Fact]
    public async Task UsageIsAggregatedByTenantModelAndDayWithExactCountsAndCosts()
    {
        var a = await CreateTenantAsync();
        var b = await CreateTenantAsync();
        var m1 = Unique("u1");
        var m2 = Unique("u2");
        var today = DateOnly.FromDateTime(DateTime.UtcNow);
        var day1 = today.AddDays(-3);
        var day2 = today.AddDays(-2);
        DateTimeOffset At(DateOnly day, int hour) => new(day.ToDateTime(new TimeOnly(hour, 0)), TimeSpan.Zero);
        await InsertUsageAsync(
            new UsageRow(a.Id, m1, 200, 0.001m, "USD", At(day1, 10), 4),
            new UsageRow(a.Id, m1, 200, 0.001m, "USD", At(day1, 23), 4),
            new UsageRow(a.Id, m1, 500, 0m, "USD", At(day1, 11), 4),
            new UsageRow(a.Id, m1, 429, 0m, "USD", At(day2, 0), 0),
            new UsageRow(a.Id, m2, 200, 0.25m, "EUR", At(day2, 9), 10),
            new UsageRow(b.Id, m1, 200, 0.002m, "USD", At(day1, 12), 8),
            new UsageRow(b.Id, m2, 200, 0.5m, "EUR", At(day2, 13), 20),
            new UsageRow(b.Id, m2, 200, 0.5m, "EUR", At(day2, 14), 20));

        // Tenant A, grouped by everything (the default): one group per day and model.
        var report = await UsageAsync($"tenantId={a.Id}");
        Assert.Equal(
            [
                $"{day1:yyyy-MM-dd}|{a.Name}|{m1}|3|2|1|0.002|USD|12",
                $"{day2:yyyy-MM-dd}|{a.Name}|{m1}|1|0|1|0|USD|0",
                $"{day2:yyyy-MM-dd}|{a.Name}|{m2}|1|1|0|0.25|EUR|10",
            ],
            Groups(report));
        var total = report.GetProperty("total");
        Assert.Equal(5, total.GetProperty("requests").GetInt64());
        Assert.Equal(3, total.GetProperty("succeeded").GetInt64());
        Assert.Equal(2, total.GetProperty("failed").GetInt64());
        Assert.Equal(["EUR 0.25", "USD 0.002"], Costs(total));

        // Model m1 across tenants, by tenant only.
        report = await UsageAsync($"model={m1}&groupBy=tenant");
        Assert.Equal(
            new[] { $"-|{a.Name}|-|4|2|2|0.002|USD|12", $"-|{b.Name}|-|1|1|0|0.002|USD|8" }.Order(StringComparer.Ordinal),
            Groups(report).Order(StringComparer.Ordinal));
        Assert.All(report.GetProperty("groups").EnumerateArray(), g => Assert.Equal(JsonValueKind.Null, g.GetProperty("day").ValueKind));

        // Tenant B by model and day, with a date window: "to" as a date covers that whole day.
        report = await UsageAsync($"tenantId={b.Id}&groupBy=model,day&from={day2:yyyy-MM-dd}&to={day2:yyyy-MM-dd}");
        Assert.Equal([$"{day2:yyyy-MM-dd}|-|{m2}|2|2|0|1|EUR|40"], Groups(report));
        Assert.Equal(new DateTimeOffset(day2.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero), report.GetProperty("from").GetDateTimeOffset());
        Assert.Equal(new DateTimeOffset(day2.AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero), report.GetProperty("to").GetDateTimeOffset());

        // Timestamps bound exactly (from inclusive, to exclusive): day1 10:00 up to 23:00 leaves out the 23:00 record.
        report = await UsageAsync($"tenantId={a.Id}&model={m1}&groupBy=day&from={At(day1, 10):yyyy-MM-dd'T'HH:mm:ss'Z'}&to={At(day1, 23):yyyy-MM-dd'T'HH:mm:ss'Z'}");
        Assert.Equal([$"{day1:yyyy-MM-dd}|-|-|2|1|1|0.001|USD|8"], Groups(report));

        // A window before the records finds nothing.
        report = await UsageAsync($"tenantId={a.Id}&from={today.AddDays(-60):yyyy-MM-dd}&to={today.AddDays(-31):yyyy-MM-dd}");
        Assert.Empty(report.GetProperty("groups").EnumerateArray());
        Assert.Equal(0, report.GetProperty("total").GetProperty("requests").GetInt64());
    }

    [Theory]
    [InlineData("tenantId=abc", "tenantId: ")]
    [InlineData("model=not/ok", "model: ")]
    [InlineData("from=yesterday", "from: ")]
    [InlineData("to=2025-13-01", "to: ")]
    [InlineData("from=2025-02-01&to=2025-01-01", "from: ")]
    [InlineData("groupBy=tenant,week", "groupBy: ")]
    public async Task InvalidUsageFiltersAreRefusedNamingTheParameter(string query, string field)
    {
        using var response = await platform.Admin.GetAsync($"/api/usage?{query}", Ct);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.StartsWith(field, await ErrorOf(response), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ATenantKeySeesOnlyItsOwnBudgetAndUsage()
    {
        var a = await CreateTenantAsync();
        var b = await CreateTenantAsync();
        foreach (var tenant in new[] { a, b })
        {
            using var put = await SendAsync(HttpMethod.Put, $"/api/tenants/{tenant.Id}/budget", new { period = "monthly", limit = 50, currency = "USD" });
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }

        var model = Unique("iso");
        var now = DateTimeOffset.UtcNow.AddSeconds(-1);
        await InsertUsageAsync(
            new UsageRow(a.Id, model, 200, 1m, "USD", now),
            new UsageRow(b.Id, model, 200, 2m, "USD", now),
            new UsageRow(b.Id, model, 200, 2m, "USD", now));
        var keyA = await CreateKeyAsync(a.Id, null);
        using var clientA = TenantClient(keyA.Plaintext);

        using (var own = await clientA.GetAsync($"/api/tenants/{a.Id}/budget", Ct))
        {
            Assert.Equal(HttpStatusCode.OK, own.StatusCode);
            Assert.Equal(a.Id, (await Json(own)).GetProperty("tenantId").GetGuid());
        }

        using (var foreign = await clientA.GetAsync($"/api/tenants/{b.Id}/budget", Ct))
        {
            Assert.Equal(HttpStatusCode.Forbidden, foreign.StatusCode);
            Assert.Equal($"tenant: this key belongs to tenant '{a.Name}' and cannot read tenant '{b.Id}'", await ErrorOf(foreign));
        }

        using (var foreignUsage = await clientA.GetAsync($"/api/usage?tenantId={b.Id}", Ct))
        {
            Assert.Equal(HttpStatusCode.Forbidden, foreignUsage.StatusCode);
            Assert.Equal($"tenant: this key belongs to tenant '{a.Name}' and cannot read tenant '{b.Id}'", await ErrorOf(foreignUsage));
        }

        // Without a tenantId the report is forced to the key's tenant; with its own id it is the same.
        foreach (var query in new[] { $"model={model}", $"model={model}&tenantId={a.Id}" })
        {
            using var usage = await clientA.GetAsync($"/api/usage?{query}", Ct);
            Assert.Equal(HttpStatusCode.OK, usage.StatusCode);
            var body = await Json(usage);
            var group = Assert.Single(body.GetProperty("groups").EnumerateArray());
            Assert.Equal(a.Id, group.GetProperty("tenantId").GetGuid());
            Assert.Equal(1, body.GetProperty("total").GetProperty("requests").GetInt64());
        }

        // The admin sees both.
        Assert.Equal(3, (await UsageAsync($"model={model}")).GetProperty("total").GetProperty("requests").GetInt64());

        // x-api-key works too.
        using (var header = platform.App.CreateHttpClient("admin-api"))
        {
            header.DefaultRequestHeaders.Add("x-api-key", keyA.Plaintext);
            using var own = await header.GetAsync($"/api/tenants/{a.Id}/budget", Ct);
            Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        }

        // Tenant keys cannot write or read admin data.
        foreach (var (method, path, body) in new (HttpMethod, string, object?)[]
        {
            (HttpMethod.Get, "/api/tenants", null),
            (HttpMethod.Get, $"/api/tenants/{a.Id}", null),
            (HttpMethod.Post, "/api/tenants", new { name = Unique("evil") }),
            (HttpMethod.Patch, $"/api/tenants/{a.Id}", new { allowedModels = new[] { "*" } }),
            (HttpMethod.Post, $"/api/tenants/{a.Id}/keys", new { name = "more" }),
            (HttpMethod.Get, $"/api/tenants/{a.Id}/keys", null),
            (HttpMethod.Put, $"/api/tenants/{a.Id}/budget", new { period = "daily", limit = 1000, currency = "USD" }),
            (HttpMethod.Delete, $"/api/tenants/{a.Id}/budget", null),
            (HttpMethod.Put, $"/api/prices/{model}", new { per1kInferences = 0.001, currency = "USD" }),
            (HttpMethod.Get, "/api/prices", null),
        })
        {
            using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent(body) };
            using var response = await clientA.SendAsync(request, Ct);
            Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{method} {path}: {(int)response.StatusCode}");
        }

        // Revoked at once, also through this AdminApi's own cache.
        using (var revoke = await platform.Admin.PostAsync($"/api/tenants/{a.Id}/keys/{keyA.Id}/revoke", null, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, revoke.StatusCode);
        }

        using (var revoked = await clientA.GetAsync($"/api/tenants/{a.Id}/budget", Ct))
        {
            Assert.Equal(HttpStatusCode.Forbidden, revoked.StatusCode);
            Assert.Contains("revoked", await ErrorOf(revoked), StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Bearer pk_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("Bearer not-a-key")]
    [InlineData("Basic dXNlcjpwYXNz")]
    public async Task AnonymousOrUnknownCallersAreUnauthorized(string? authorization)
    {
        var tenant = await CreateTenantAsync();
        using var client = platform.App.CreateHttpClient("admin-api");
        foreach (var path in new[] { $"/api/tenants/{tenant.Id}/budget", "/api/usage" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            if (authorization is not null)
            {
                request.Headers.TryAddWithoutValidation("Authorization", authorization);
            }

            using var response = await client.SendAsync(request, Ct);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.StartsWith("Authorization: ", await ErrorOf(response), StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("GET", "/api/tenants")]
    [InlineData("POST", "/api/tenants")]
    [InlineData("PATCH", "/api/tenants/00000000-0000-0000-0000-000000000001")]
    [InlineData("DELETE", "/api/tenants/00000000-0000-0000-0000-000000000001")]
    [InlineData("POST", "/api/tenants/00000000-0000-0000-0000-000000000001/keys")]
    [InlineData("GET", "/api/tenants/00000000-0000-0000-0000-000000000001/keys")]
    [InlineData("POST", "/api/tenants/00000000-0000-0000-0000-000000000001/keys/00000000-0000-0000-0000-000000000002/revoke")]
    [InlineData("PUT", "/api/tenants/00000000-0000-0000-0000-000000000001/budget")]
    [InlineData("DELETE", "/api/tenants/00000000-0000-0000-0000-000000000001/budget")]
    [InlineData("GET", "/api/prices")]
    [InlineData("PUT", "/api/prices/anything")]
    [InlineData("DELETE", "/api/prices/anything")]
    public async Task AdminRoutesNeedTheAdminKey(string method, string path)
    {
        using var anonymous = platform.App.CreateHttpClient("admin-api");
        using (var response = await anonymous.SendAsync(new HttpRequestMessage(new HttpMethod(method), path) { Content = JsonContent(new { name = "x" }) }, Ct))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }

        var wrong = new HttpRequestMessage(new HttpMethod(method), path) { Content = JsonContent(new { name = "x" }) };
        wrong.Headers.Authorization = new AuthenticationHeaderValue("Bearer", platform.AdminKey + "x");
        using (var response = await anonymous.SendAsync(wrong, Ct))
        {
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        }
    }

    private sealed record TenantRef(Guid Id, string Name);

    private sealed record KeyRef(Guid Id, string Plaintext);

    private sealed record UsageRow(Guid TenantId, string Model, int Status, decimal Cost, string Currency, DateTimeOffset OccurredAt, long InputElements = 1);

    private async Task<TenantRef> CreateTenantAsync()
    {
        using var response = await SendAsync(HttpMethod.Post, "/api/tenants", new { name = Unique("tenant"), allowedModels = new[] { "*" } });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var body = await Json(response);
        return new TenantRef(body.GetProperty("id").GetGuid(), body.GetProperty("name").GetString()!);
    }

    private async Task<KeyRef> CreateKeyAsync(Guid tenantId, DateTimeOffset? expiresAt)
    {
        using var response = await SendAsync(HttpMethod.Post, $"/api/tenants/{tenantId}/keys", new { name = "test", expiresAt });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var body = await Json(response);
        return new KeyRef(body.GetProperty("id").GetGuid(), body.GetProperty("key").GetString()!);
    }

    private HttpClient TenantClient(string key)
    {
        var client = platform.App.CreateHttpClient("admin-api");
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    private async Task<JsonElement> UsageAsync(string query)
    {
        using var response = await platform.Admin.GetAsync($"/api/usage?{query}", Ct);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync(Ct));
        return await Json(response);
    }

    private async Task InsertUsageAsync(params UsageRow[] rows)
    {
        foreach (var row in rows)
        {
            await using var insert = platform.Database.CreateCommand(
                "INSERT INTO usage_records (id, tenant_id, key_id, model, version, status, latency_ms, batch_size, cost, currency, trace_id, occurred_at, input_elements) " +
                "VALUES ($1, $2, NULL, $3, 1, $4, 1.5, 1, $5, $6, NULL, $7, $8)");
            insert.Parameters.AddWithValue(Guid.NewGuid());
            insert.Parameters.AddWithValue(row.TenantId);
            insert.Parameters.AddWithValue(row.Model);
            insert.Parameters.AddWithValue(row.Status);
            insert.Parameters.AddWithValue(row.Cost);
            insert.Parameters.AddWithValue(row.Currency);
            insert.Parameters.AddWithValue(row.OccurredAt);
            insert.Parameters.AddWithValue(row.InputElements);
            await insert.ExecuteNonQueryAsync(Ct);
        }
    }

    private async Task<Guid> InsertEventAsync(Guid tenantId, string kind, double threshold, DateTimeOffset periodStart, decimal spent, decimal limit, DateTimeOffset occurredAt)
    {
        var id = Guid.NewGuid();
        await using var insert = platform.Database.CreateCommand(
            "INSERT INTO budget_events (id, tenant_id, kind, threshold, period, period_start, spent, limit_amount, currency, occurred_at) " +
            "VALUES ($1, $2, $3, $4, 'monthly', $5, $6, $7, 'USD', $8)");
        insert.Parameters.AddWithValue(id);
        insert.Parameters.AddWithValue(tenantId);
        insert.Parameters.AddWithValue(kind);
        insert.Parameters.AddWithValue(threshold);
        insert.Parameters.AddWithValue(periodStart);
        insert.Parameters.AddWithValue(spent);
        insert.Parameters.AddWithValue(limit);
        insert.Parameters.AddWithValue(occurredAt);
        await insert.ExecuteNonQueryAsync(Ct);
        return id;
    }

    private static UsageRecord Record(Guid tenantId, string model, int status, decimal cost, long inputElements) =>
        new(Guid.NewGuid(), tenantId, null, model, 1, status, 2.0, 1, cost, "USD", null, DateTimeOffset.UtcNow, InputElements: inputElements);

    private async Task<long> ScalarAsync(string sql, object parameter)
    {
        await using var command = platform.Database.CreateCommand(sql);
        command.Parameters.AddWithValue(parameter);
        return Convert.ToInt64(await command.ExecuteScalarAsync(Ct), CultureInfo.InvariantCulture);
    }

    /// <summary>Polls until <paramref name="probe"/> returns a value (the usage writer drains every 200 ms).</summary>
    private static async Task<T> EventuallyAsync<T>(Func<Task<T?>> probe, string what)
        where T : class =>
        (await Waits.UntilAsync(probe, value => value is not null, TimeSpan.FromSeconds(15), what, Ct))!;

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, object body)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is string text ? new StringContent(text, Encoding.UTF8, "application/json") : JsonContent(body) };
        return await platform.Admin.SendAsync(request, Ct);
    }

    private static StringContent JsonContent(object body) =>
        new(JsonSerializer.Serialize(body, JsonSerializerOptions.Web), Encoding.UTF8, "application/json");

    private static async Task AssertBadRequestAsync(HttpResponseMessage response, string field)
    {
        using (response)
        {
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(Ct)}");
            Assert.StartsWith(field, await ErrorOf(response), StringComparison.Ordinal);
        }
    }

    /// <summary>day|tenantName|model|requests|succeeded|failed|cost|currency|inputElements, "-" for an ungrouped dimension.</summary>
    private static string[] Groups(JsonElement report) =>
        [.. report.GetProperty("groups").EnumerateArray().Select(g => string.Join('|',
            Text(g.GetProperty("day")), Text(g.GetProperty("tenantName")), Text(g.GetProperty("model")),
            g.GetProperty("requests").GetInt64(), g.GetProperty("succeeded").GetInt64(), g.GetProperty("failed").GetInt64(),
            Plain(g.GetProperty("cost").GetDecimal()),
            g.GetProperty("currency").GetString(), g.GetProperty("inputElements").GetInt64()))];

    private static string[] Costs(JsonElement total) =>
        [.. total.GetProperty("costs").EnumerateArray().Select(c =>
            $"{c.GetProperty("currency").GetString()} {Plain(c.GetProperty("amount").GetDecimal())}")];

    /// <summary>A decimal without trailing zeros (Postgres answers sums at the column's scale).</summary>
    private static string Plain(decimal value) => (value / 1.000000000000000000000000000000000m).ToString(CultureInfo.InvariantCulture);

    private static string Text(JsonElement value) => value.ValueKind == JsonValueKind.Null ? "-" : value.ToString();

    private static string[] Strings(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetString()!)];

    private static async Task<JsonElement> Json(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;

    private static async Task<string> ErrorOf(HttpResponseMessage response) =>
        (await Json(response)).GetProperty("error").GetString()!;

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 13)];
}
