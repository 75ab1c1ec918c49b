using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Platform.Rollouts.Tests;

public sealed class GuardrailTests(RolloutFixture platform, ITestOutputHelper output)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task CandidateReturningErrorsIsRolledBackWithinItsWindowAndGetsNoRequestAfterwards()
    {
        var model = await platform.CreateModelWithTwoVersionsAsync("errors", failingCandidate: true);
        const int windowSeconds = 20;
        var created = await platform.StartRolloutAsync(model, new
        {
            stableVersion = 1, candidateVersion = 2, candidatePercent = 30, windowSeconds,
            guardrails = new { maxErrorRate = 0.1, minRequests = 10 },
        });
        var createdAt = created.GetProperty("createdAt").GetDateTimeOffset();

        using var traffic = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var driving = platform.DriveTrafficAsync(model, 4, traffic.Token);
        JsonElement rollout = default;
        await RolloutFixture.EventuallyAsync("automatic rollback", async () =>
        {
            (_, rollout) = await platform.AdminAsync(HttpMethod.Get, $"/api/models/{model}/rollout");
            return rollout.GetProperty("state").GetString() == "rolled_back";
        }, TimeSpan.FromSeconds(90));
        // InferenceApi announces every rule it applies; from then on the candidate must get nothing.
        await RolloutFixture.EventuallyAsync("rollback applied in InferenceApi", () =>
            Task.FromResult(platform.App.Logs("inference-api", 5000).Contains($"Rollout of {model} applied", StringComparison.Ordinal)
                && platform.App.Logs("inference-api", 5000).Split('\n').Any(l => l.Contains(model, StringComparison.Ordinal) && l.Contains("rolled_back", StringComparison.Ordinal))));
        var applied = DateTimeOffset.UtcNow;
        var after = await platform.InferManyAsync(model, 300, parallel: 4);
        await traffic.CancelAsync();
        var before = await driving;

        Assert.Contains(before, o => o.Outcome.Status == 500); // the candidate did fail before the rollback
        Assert.All(after, o => Assert.Equal((200, 1L), (o.Status, o.ModelVersion)));
        Assert.All(before.Where(o => o.Sent > applied), o => Assert.Equal((200, 1L), (o.Outcome.Status, o.Outcome.ModelVersion)));

        var rollback = rollout.GetProperty("events").EnumerateArray().Single(e => e.GetProperty("kind").GetString() == "rolled_back");
        Assert.Equal("controller", rollback.GetProperty("actor").GetString());
        Assert.Equal(0, rollback.GetProperty("toPercent").GetDouble());
        Assert.Equal(0, rollout.GetProperty("candidatePercent").GetDouble());
        Assert.StartsWith("candidate error rate", rollback.GetProperty("reason").GetString(), StringComparison.Ordinal);
        var observed = rollback.GetProperty("observed").GetProperty("candidate");
        Assert.True(observed.GetProperty("errorRate").GetDouble() > 0.1, observed.ToString());
        var took = rollback.GetProperty("occurredAt").GetDateTimeOffset() - createdAt;
        output.WriteLine($"rolled back {took.TotalSeconds:0.0} s after the start: {rollback.GetProperty("reason").GetString()}");
        Assert.True(took < TimeSpan.FromSeconds(windowSeconds), $"rolled back after {took}, window {windowSeconds} s");

        // The decision is a log line of AdminApi and a metric.
        Assert.Contains($"rolled_back by the controller", platform.App.Logs("admin-api", 5000), StringComparison.Ordinal);
        using var metrics = platform.App.CreateHttpClient("admin-api");
        var scrape = await metrics.GetStringAsync("/metrics", Ct);
        Assert.True(Platform.TestSupport.PrometheusText.Value(scrape, "platform_rollouts_changes_total", ("model", model), ("kind", "rolled_back"), ("actor", "controller")) >= 1,
            "no platform_rollouts_changes_total series for the rollback");

        // No usage record of the candidate after the rule was applied.
        await using var command = platform.Database.CreateCommand("SELECT count(*) FROM usage_records WHERE model = $1 AND version = 2 AND occurred_at > $2");
        command.Parameters.AddWithValue(model);
        command.Parameters.AddWithValue(applied);
        Assert.Equal(0L, (long)(await command.ExecuteScalarAsync(Ct))!);
    }

    [Fact]
    public async Task RolloutSurvivesAnAdminApiRestartAndCleanWindowsPromoteItStepByStep()
    {
        var model = await platform.CreateModelWithTwoVersionsAsync("promote");
        var created = await platform.StartRolloutAsync(model, new
        {
            stableVersion = 1, candidateVersion = 2, candidatePercent = 10, windowSeconds = 5, promotionSteps = new[] { 50, 100 },
            guardrails = new { maxErrorRate = 0.05, maxP95LatencyMs = 5000, minRequests = 10 },
        });
        var id = created.GetProperty("id").GetString();

        await platform.App.StopAsync("admin-api", cancellationToken: Ct);
        // InferenceApi keeps routing by the rule it holds while AdminApi is down.
        await RolloutFixture.EventuallyAsync("10 % rule applied", async () => (await platform.InferAsync(model)).ModelVersion == 2);
        Assert.All(await platform.InferManyAsync(model, 40), o => Assert.Equal(200, o.Status));
        await platform.App.StartAsync("admin-api", cancellationToken: Ct);

        var (status, shown) = await platform.AdminAsync(HttpMethod.Get, $"/api/models/{model}/rollout");
        Assert.Equal(200, status);
        Assert.Equal(id, shown.GetProperty("id").GetString());
        Assert.Equal(10, shown.GetProperty("candidatePercent").GetDouble());

        using var traffic = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var driving = platform.DriveTrafficAsync(model, 4, traffic.Token);
        await RolloutFixture.EventuallyAsync("promoted", async () =>
        {
            (_, shown) = await platform.AdminAsync(HttpMethod.Get, $"/api/models/{model}/rollout");
            return shown.GetProperty("state").GetString() == "promoted";
        }, TimeSpan.FromSeconds(120));
        await traffic.CancelAsync();
        var sent = await driving;
        Assert.All(sent, o => Assert.Equal(200, o.Outcome.Status));

        var events = shown.GetProperty("events").EnumerateArray().ToArray();
        Assert.Equal(["created", "step", "promoted"], events.Select(e => e.GetProperty("kind").GetString()));
        Assert.Equal([10.0, 50.0, 100.0], events.Select(e => e.GetProperty("toPercent").GetDouble()));
        Assert.Equal(["admin", "controller", "controller"], events.Select(e => e.GetProperty("actor").GetString()));
        Assert.All(events.Skip(1), e => Assert.Contains("window clean", e.GetProperty("reason").GetString(), StringComparison.Ordinal));
        output.WriteLine(Timeline(events));

        await RolloutFixture.EventuallyAsync("100 % applied", async () =>
            (await platform.InferManyAsync(model, 20)).All(o => o.ModelVersion == 2));
    }

    /// <summary>The rollout's events as a table: time since creation, percentages, actor, reason.</summary>
    private static string Timeline(IReadOnlyList<JsonElement> events)
    {
        var start = events[0].GetProperty("occurredAt").GetDateTimeOffset();
        var text = new StringBuilder("t (s)  event        from → to   actor       reason\n");
        foreach (var e in events)
        {
            var from = e.GetProperty("fromPercent").ValueKind == JsonValueKind.Null ? "-" : e.GetProperty("fromPercent").GetDouble().ToString(CultureInfo.InvariantCulture);
            text.Append(CultureInfo.InvariantCulture,
                $"{(e.GetProperty("occurredAt").GetDateTimeOffset() - start).TotalSeconds,6:0.0}  {e.GetProperty("kind").GetString(),-11}  {from,4} → {e.GetProperty("toPercent").GetDouble(),3}  {e.GetProperty("actor").GetString(),-10}  {e.GetProperty("reason").GetString()}\n");
        }

        return text.ToString();
    }
}
