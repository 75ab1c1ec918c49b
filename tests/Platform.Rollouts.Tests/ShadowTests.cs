using System.Text.Json;

namespace Platform.Rollouts.Tests;

public sealed class ShadowTests(RolloutFixture platform, ITestOutputHelper output)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ShadowAnswersNeverReachTheClientOrTheUsageRecordsAndOutputDriftRollsTheCandidateBack()
    {
        var model = await platform.CreateModelWithTwoVersionsAsync("shadow");
        await platform.StartRolloutAsync(model, new
        {
            stableVersion = 1, candidateVersion = 2, mode = "shadow", candidatePercent = 100, windowSeconds = 60,
            // The versions have different weights: any drift above this breaches.
            guardrails = new { maxOutputDrift = 1e-9, minRequests = 10 },
        });
        // Without the rule the newest version (2) answers; the first answer of version 1 proves the rule is applied.
        await RolloutFixture.EventuallyAsync("shadow rule applied", async () => (await platform.InferAsync(model)).ModelVersion == 1);
        var applied = DateTimeOffset.UtcNow;

        var outcomes = new List<InferOutcome>(await platform.InferManyAsync(model, 100, parallel: 4));
        var rollback = await RolledBackAsync(model, outcomes);
        Assert.All(outcomes, o => Assert.Equal((200, 1L), (o.Status, o.ModelVersion)));
        output.WriteLine(rollback.GetProperty("reason").GetString() ?? string.Empty);
        Assert.StartsWith("shadow output drift", rollback.GetProperty("reason").GetString(), StringComparison.Ordinal);
        var shadow = rollback.GetProperty("observed").GetProperty("shadow");
        Assert.True(shadow.GetProperty("compared").GetInt64() >= 10, shadow.ToString());
        Assert.True(shadow.GetProperty("meanDrift").GetDouble() > 1e-9, shadow.ToString());
        // The candidate answered nothing: its copies are counted as shadow only.
        Assert.Equal(0, rollback.GetProperty("observed").GetProperty("candidate").GetProperty("requests").GetInt64());

        // Exactly one usage record per client request, all of the stable version: copies are never charged. A last request
        // after the copies were judged marks how far the usage writer got: once its record is in, so would a copy's be.
        var marker = await platform.InferAsync(model, id: "marker", cancellationToken: Ct);
        Assert.Equal((200, 1L), (marker.Status, marker.ModelVersion));
        await RolloutFixture.EventuallyAsync("usage records written", async () => await UsageSinceAsync(model, applied, null) >= outcomes.Count + 1);
        Assert.Equal(outcomes.Count + 1, await UsageSinceAsync(model, applied, null));
        Assert.Equal(0, await UsageSinceAsync(model, applied, 2));
    }

    [Fact]
    public async Task FailingShadowCandidateNeverFailsTheRealRequestAndIsRolledBack()
    {
        var model = await platform.CreateModelWithTwoVersionsAsync("shadowfail", failingCandidate: true);
        await platform.StartRolloutAsync(model, new
        {
            stableVersion = 1, candidateVersion = 2, mode = "shadow", candidatePercent = 100, windowSeconds = 60,
            guardrails = new { maxErrorRate = 0.5, minRequests = 10 },
        });
        await RolloutFixture.EventuallyAsync("shadow rule applied", async () => (await platform.InferAsync(model)).ModelVersion == 1);

        var outcomes = new List<InferOutcome>(await platform.InferManyAsync(model, 60, parallel: 4));
        var rollback = await RolledBackAsync(model, outcomes);
        Assert.All(outcomes, o => Assert.Equal((200, 1L), (o.Status, o.ModelVersion)));
        var reason = rollback.GetProperty("reason").GetString();
        Assert.StartsWith("shadow error rate 1 > 0.5", reason, StringComparison.Ordinal);
    }

    // Copies start only once every worker replica has loaded the candidate (and the replicas' answer is cached for a
    // second), so a burst sent right after the versions first answered may leave no copy at all: traffic goes on, in small
    // bursts, until the controller has judged the copies. Every request sent is kept in outcomes. Returns the rollout's
    // one rolled_back event.
    private async Task<JsonElement> RolledBackAsync(string model, List<InferOutcome> outcomes)
    {
        JsonElement rollout = default;
        await RolloutFixture.EventuallyAsync("rollback", async () =>
        {
            (_, rollout) = await platform.AdminAsync(HttpMethod.Get, $"/api/models/{model}/rollout");
            if (rollout.GetProperty("state").GetString() == "rolled_back")
            {
                return true;
            }

            outcomes.AddRange(await platform.InferManyAsync(model, 4, parallel: 4));
            return false;
        }, TimeSpan.FromSeconds(90));
        return rollout.GetProperty("events").EnumerateArray().Single(e => e.GetProperty("kind").GetString() == "rolled_back");
    }

    private async Task<long> UsageSinceAsync(string model, DateTimeOffset since, long? version)
    {
        await using var command = platform.Database.CreateCommand(
            "SELECT count(*) FROM usage_records WHERE model = $1 AND occurred_at >= $2 AND ($3::bigint IS NULL OR version = $3)");
        command.Parameters.AddWithValue(model);
        command.Parameters.AddWithValue(since);
        command.Parameters.Add(new Npgsql.NpgsqlParameter { Value = (object?)version ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bigint });
        return (long)(await command.ExecuteScalarAsync(Ct))!;
    }
}
