using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Platform.TestSupport;

namespace Platform.Governance.Tests;

/// <summary>Prices, budgets (soft alerts, hard stop), durable usage records and attribution telemetry.</summary>
public sealed class BudgetAndUsageTests(GovernanceFixture fixture)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ABudgetAlertsAtItsSoftThresholdsAndStopsAtItsLimit()
    {
        // A model priced at exactly 1 USD per inference (1000 per 1,000) and a daily budget of 5 USD.
        var model = GovernanceFixture.OtherModel;
        using (var price = await fixture.Admin.PutAsJsonAsync($"/api/prices/{model}", new { per1kInferences = 1000, currency = "USD" }, Ct))
        {
            Assert.True(price.IsSuccessStatusCode, await price.Content.ReadAsStringAsync(Ct));
        }

        var tenant = await PlatformTenants.CreateAsync(fixture.Admin, $"budget-{Guid.NewGuid():N}"[..20], [model],
            attribution: new { team = "search", project = "ranking", environment = "test", customer = "acme-customer-42" }, cancellationToken: Ct);
        using (var budget = await fixture.Admin.PutAsJsonAsync($"/api/tenants/{tenant.Id}/budget",
            new { period = "daily", limit = 5, currency = "USD", softThresholds = new[] { 0.4, 0.8 } }, Ct))
        {
            Assert.True(budget.IsSuccessStatusCode, await budget.Content.ReadAsStringAsync(Ct));
        }

        using var client = fixture.Inference().WithApiKey(tenant.Key);
        var statuses = new List<int>();
        string refusal = string.Empty;
        TimeSpan? retryAfter = null;
        for (var i = 0; i < 7; i++)
        {
            using var response = await client.PostAsync($"/v2/models/{model}/infer", GovernanceFixture.InferBody($"budget-{i}"), Ct);
            statuses.Add((int)response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                refusal = await response.Content.ReadAsStringAsync(Ct);
                retryAfter = response.Headers.RetryAfter?.Delta;
            }
        }

        // Five inferences spend the 5 USD; the sixth and seventh are refused, saying which budget and when it resets.
        Assert.True(statuses.SequenceEqual([200, 200, 200, 200, 200, 429, 429]), $"{string.Join(",", statuses)}\n{fixture.Logs("inference-api")}");
        Assert.Contains("budget", refusal, StringComparison.Ordinal);
        Assert.Contains("daily budget of 5 USD", refusal, StringComparison.Ordinal);
        var tomorrow = DateTime.UtcNow.Date.AddDays(1);
        Assert.Contains($"resets at {tomorrow:yyyy-MM-dd}T00:00:00Z", refusal, StringComparison.Ordinal);
        Assert.NotNull(retryAfter);

        // The budget report: spent, exhausted, and the three crossings (40 %, 80 %, exhausted), each raised once.
        var report = await EventuallyAsync(async () =>
        {
            using var response = await fixture.Admin.GetAsync($"/api/tenants/{tenant.Id}/budget", Ct);
            var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement.Clone();
            return (body.TryGetProperty("events", out var events) && events.GetArrayLength() >= 3, body);
        }, "the three budget crossings in the report");
        Assert.Equal(5m, report.GetProperty("spent").GetDecimal());
        Assert.True(report.GetProperty("exhausted").GetBoolean());
        var crossings = report.GetProperty("events").EnumerateArray()
            .Select(e => (e.GetProperty("kind").GetString(), e.GetProperty("threshold").GetDouble()))
            .OrderBy(e => e.Item2).ToList();
        Assert.Equal([("soft", 0.4), ("soft", 0.8), ("exhausted", 1.0)], crossings);

        // Each crossing is also a warning in InferenceApi's log, naming the tenant and the budget. The log line follows the
        // event into Redis, and reaches the test through the orchestrator: wait for it.
        await Waits.UntilAsync(() => fixture.Logs("inference-api", 2000).Contains($"Tenant {tenant.Name} crossed", StringComparison.Ordinal),
            TimeSpan.FromSeconds(20), "the budget crossing's warning in InferenceApi's log", Ct);
        Assert.Contains("of its daily budget", fixture.Logs("inference-api", 2000), StringComparison.Ordinal);

        // Usage: 7 records, the refused ones free.
        var usage = await fixture.SettledUsageAsync(tenant.Id, 7, Ct);
        Assert.Equal(5m, usage.Sum(u => u.Cost));
        Assert.Equal(2, usage.Count(u => u.Status == 429 && u.Cost == 0));

        // Metrics carry team/project/environment but never the customer; budget consumption is a gauge.
        using var metrics = fixture.Inference();
        var text = await metrics.GetStringAsync("/metrics", Ct);
        var ratio = text.Split('\n').FirstOrDefault(l => l.StartsWith("platform_tenant_budget_used_ratio{", StringComparison.Ordinal)
            && l.Contains($"platform_tenant=\"{tenant.Name}\"", StringComparison.Ordinal));
        Assert.NotNull(ratio);
        Assert.Contains("platform_team=\"search\"", ratio, StringComparison.Ordinal);
        Assert.Equal(1.0, double.Parse(ratio.Split(' ')[^1], System.Globalization.CultureInfo.InvariantCulture), 6);
        var duration = text.Split('\n').FirstOrDefault(l => l.StartsWith("gen_ai_client_operation_duration", StringComparison.Ordinal)
            && l.Contains($"platform_tenant=\"{tenant.Name}\"", StringComparison.Ordinal));
        Assert.NotNull(duration);
        Assert.Contains($"gen_ai_request_model=\"{model}\"", duration, StringComparison.Ordinal);
        Assert.Contains("platform_project=\"ranking\"", duration, StringComparison.Ordinal);
        Assert.Contains("platform_environment=\"test\"", duration, StringComparison.Ordinal);
        Assert.DoesNotContain("acme-customer-42", text, StringComparison.Ordinal);
        Assert.Contains(text.Split('\n'), l => l.StartsWith("platform_tenant_budget_alerts", StringComparison.Ordinal)
            && l.Contains($"platform_tenant=\"{tenant.Name}\"", StringComparison.Ordinal));

        using var reset = await fixture.Admin.DeleteAsync($"/api/prices/{model}", Ct);
    }

    [Fact]
    public async Task NoUsageRecordIsLostWhenAnInferenceApiReplicaIsKilledMidBurst()
    {
        var tenant = await PlatformTenants.CreateAsync(fixture.Admin, $"kill-{Guid.NewGuid():N}"[..20], cancellationToken: Ct);
        using var victim = fixture.Inference(0).WithApiKey(tenant.Key);
        using var survivor = fixture.Inference(1).WithApiKey(tenant.Key);
        await GovernanceFixture.WaitServedAsync(victim, GovernanceFixture.Model, Ct);
        await GovernanceFixture.WaitServedAsync(survivor, GovernanceFixture.Model, Ct);
        var warmUp = await fixture.SettledUsageAsync(tenant.Id, 2, Ct);

        var answered = new System.Collections.Concurrent.ConcurrentBag<string>();
        var sent = new System.Collections.Concurrent.ConcurrentBag<string>();
        var refused = new System.Collections.Concurrent.ConcurrentBag<string>();
        var killAt = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var burst = Enumerable.Range(0, 4).Select(worker => Task.Run(async () =>
        {
            for (var i = 0; i < 60; i++)
            {
                var id = $"kill-{worker}-{i}";
                sent.Add(id);
                try
                {
                    using var response = await victim.PostAsync($"/v2/models/{GovernanceFixture.Model}/infer", GovernanceFixture.InferBody(id, i), Ct);
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        answered.Add(id);
                        if (answered.Count == 80)
                        {
                            killAt.TrySetResult();
                        }
                    }
                    else
                    {
                        refused.Add($"{id}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(Ct)}");
                    }
                }
                catch (HttpRequestException)
                {
                    return; // the replica is gone: this client stops
                }
            }
        })).ToArray();

        await Task.WhenAny(killAt.Task, Task.WhenAll(burst)).WaitAsync(TimeSpan.FromSeconds(60), Ct);
        Assert.True(killAt.Task.IsCompleted,
            $"the burst ended with {answered.Count} of 240 answered before the kill; refused: {string.Join("; ", refused.Take(5))}");
        await fixture.App.KillAsync("inference-api", replica: 0, Ct);
        await Task.WhenAll(burst);

        // The other replica keeps serving the tenant meanwhile.
        for (var i = 0; i < 20; i++)
        {
            var id = $"after-{i}";
            sent.Add(id);
            using var response = await survivor.PostAsync($"/v2/models/{GovernanceFixture.Model}/infer", GovernanceFixture.InferBody(id, i), Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            answered.Add(id);
        }

        var recorded = await fixture.SettledRecordsPerRequestAsync(tenant.Id, warmUp.Count + answered.Count, Ct);
        // Every answered request has exactly one record; nothing was recorded that was not sent; at most the requests
        // in flight at the kill (4) have a record without an answer (recorded, then killed before the bytes went out).
        Assert.All(answered, id => Assert.Equal(1, recorded.GetValueOrDefault(id)));
        Assert.All(recorded, r => Assert.Contains(r.Key, sent));
        Assert.All(recorded, r => Assert.Equal(1, r.Value));
        Assert.InRange(recorded.Count - answered.Count, 0, 4);

        await fixture.App.StartAsync("inference-api", replica: 0, Ct);
    }

    [Fact]
    public async Task RecordsMadeWhilePostgresIsDownAreAllWrittenAfterItRestarts()
    {
        var tenant = await PlatformTenants.CreateAsync(fixture.Admin, $"pg-{Guid.NewGuid():N}"[..20], cancellationToken: Ct);
        using var client = fixture.Inference(1).WithApiKey(tenant.Key);
        await GovernanceFixture.WaitServedAsync(client, GovernanceFixture.Model, Ct);
        var before = (await fixture.SettledUsageAsync(tenant.Id, 1, Ct)).Count;

        await fixture.App.StopAsync("postgres", cancellationToken: Ct);
        try
        {
            // The key and model are cached in InferenceApi; the records wait in Redis.
            for (var i = 0; i < 25; i++)
            {
                using var response = await client.PostAsync($"/v2/models/{GovernanceFixture.Model}/infer", GovernanceFixture.InferBody($"pg-{i}", i), Ct);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }

            Assert.True(await new Platform.Tenancy.UsageBuffer(fixture.Redis).BacklogAsync(Ct) >= 25);
        }
        finally
        {
            await fixture.App.StartAsync("postgres", cancellationToken: Ct);
        }

        var records = await fixture.SettledUsageAsync(tenant.Id, before + 25, Ct);
        Assert.Equal(before + 25, records.Count);
        Assert.Equal(25, records.Count(r => r.RequestId?.StartsWith("pg-", StringComparison.Ordinal) == true));
        await fixture.App.WaitForAllHealthyAsync(Ct);
    }

    [Fact]
    public async Task WhileRedisIsDownInferenceAndBudgetAnswer503AndRecoverWhenItIsBack()
    {
        var tenant = await PlatformTenants.CreateAsync(fixture.Admin, $"redis-{Guid.NewGuid():N}"[..20], cancellationToken: Ct);
        using (var budget = await fixture.Admin.PutAsJsonAsync($"/api/tenants/{tenant.Id}/budget", new { period = "monthly", limit = 100, currency = "USD" }, Ct))
        {
            Assert.True(budget.IsSuccessStatusCode, await budget.Content.ReadAsStringAsync(Ct));
        }

        using var client = fixture.Inference(0).WithApiKey(tenant.Key);
        await GovernanceFixture.WaitServedAsync(client, GovernanceFixture.Model, Ct);
        var before = (await fixture.SettledUsageAsync(tenant.Id, 1, Ct)).Count;

        await fixture.App.StopAsync("redis", cancellationToken: Ct);
        try
        {
            // Fail closed: without the shared limiter and ledger nothing could be limited or charged.
            using var refused = await client.PostAsync($"/v2/models/{GovernanceFixture.Model}/infer", GovernanceFixture.InferBody("redis-down"), Ct);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.NotNull(refused.Headers.RetryAfter);
            Assert.Contains("rate limiter and usage ledger are unavailable", await refused.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);

            using var status = await fixture.Admin.GetAsync($"/api/tenants/{tenant.Id}/budget", Ct);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, status.StatusCode);
            Assert.NotNull(status.Headers.RetryAfter);
            Assert.Contains("Redis unreachable", await status.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }
        finally
        {
            await fixture.App.StartAsync("redis", cancellationToken: Ct);
        }

        var served = await EventuallyAsync(async () =>
        {
            using var response = await client.PostAsync($"/v2/models/{GovernanceFixture.Model}/infer", GovernanceFixture.InferBody("redis-back"), Ct);
            return (response.StatusCode == HttpStatusCode.OK, JsonSerializer.SerializeToElement((int)response.StatusCode));
        }, "an inference served with Redis back");
        Assert.Equal(200, served.GetInt32());

        // The refused request was never charged nor recorded; the one after recovery is both.
        var records = await fixture.SettledUsageAsync(tenant.Id, before + 1, Ct);
        Assert.DoesNotContain(records, r => r.RequestId == "redis-down");
        Assert.Single(records, r => r.RequestId == "redis-back");
        var budgetBack = await EventuallyAsync(async () =>
        {
            using var status = await fixture.Admin.GetAsync($"/api/tenants/{tenant.Id}/budget", Ct);
            return (status.StatusCode == HttpStatusCode.OK, JsonSerializer.SerializeToElement((int)status.StatusCode));
        }, "the budget report with Redis back");
        Assert.Equal(200, budgetBack.GetInt32());

        await fixture.App.WaitForAllHealthyAsync(Ct);
    }

    private static async Task<JsonElement> EventuallyAsync(Func<Task<(bool Done, JsonElement Body)>> probe, string what) =>
        (await Waits.UntilAsync(probe, r => r.Done, TimeSpan.FromSeconds(20), what, Ct)).Body;
}
