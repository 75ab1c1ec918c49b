using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Platform.TestSupport;
using static Microsoft.Playwright.Assertions;

namespace Platform.Browser.Tests;

/// <summary>Resource commands from the dashboard's UI, checked in the UI and against <c>aspire describe</c>.</summary>
public sealed class ResourceCommandTests(DashboardFixture dashboard) : DashboardTest(dashboard)
{
    private static readonly TimeSpan RecoveryTimeout = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task RestartingAModelWorkerReplicaFromTheUiBringsItBackRunningAsANewProcess()
    {
        var before = await WorkersAsync();
        var (restarted, other) = (before[0], before[1]);
        var oldProcess = Dashboard.Platform.Processes().Single(p => p.Id == restarted.ProcessId);

        var page = await OpenAsync();
        var row = ResourceRow(page, restarted.Name);
        await Expect(State(row)).ToHaveTextAsync("Running");
        await row.GetByRole(AriaRole.Button, new() { Name = "Actions" }).ClickAsync();
        await page.GetByRole(AriaRole.Menuitem, new() { Name = "Restart" }).ClickAsync();

        // Aspire stops the replica and starts it again: a new process, Running and Healthy; the other replica is untouched.
        var after = await Waits.UntilAsync(WorkersAsync,
            workers => workers.SingleOrDefault(r => r.Name == restarted.Name) is { IsRunningAndHealthy: true } replica && replica.ProcessId != restarted.ProcessId,
            RecoveryTimeout, $"{restarted.Name} back as a new, healthy process", Ct);

        Assert.Equal(other.ProcessId, after.Single(r => r.Name == other.Name).ProcessId);
        Assert.False(AppHostProcess.IsRunning(oldProcess), $"the replica's old process still runs: {oldProcess}");
        await Expect(State(row)).ToHaveTextAsync("Running", new() { Timeout = 60_000 });
    }

    [Fact]
    public async Task StoppingRedisFromTheUiMakesItsDependantsUnhealthyAndStartingItBringsThemBack()
    {
        // Every service checks Redis in /health, so stopping Redis turns them Unhealthy.
        string[] dependants = ["admin-api", "context-enrichment", "inference-api"];
        var page = await OpenAsync();
        var redis = ResourceRow(page, "redis");
        await Expect(State(redis)).ToHaveTextAsync("Running");
        foreach (var name in dependants)
        {
            await Expect(State(ResourceRow(page, name))).ToHaveTextAsync("Running");
        }

        await redis.GetByRole(AriaRole.Button, new() { Name = "Stop resource" }).ClickAsync();
        try
        {
            await Expect(State(redis)).Not.ToHaveTextAsync(new Regex("^Running"));
            foreach (var name in dependants)
            {
                await Expect(State(ResourceRow(page, name))).ToHaveTextAsync("Running (Unhealthy)", new() { Timeout = 60_000 });
            }

            var described = await Dashboard.Platform.DescribeAsync(cancellationToken: Ct);
            Assert.All(dependants, name => Assert.Equal("Unhealthy", described.Single(r => r.DisplayName == name).HealthStatus));
        }
        finally
        {
            await redis.GetByRole(AriaRole.Button, new() { Name = "Start resource" }).ClickAsync();
        }

        await Expect(State(redis)).ToHaveTextAsync("Running", new() { Timeout = 60_000 });
        foreach (var name in dependants)
        {
            await Expect(State(ResourceRow(page, name))).ToHaveTextAsync("Running", new() { Timeout = 90_000 });
        }

        await Dashboard.Platform.DescribeWhenHealthyAsync(RecoveryTimeout, Ct);
    }

    private async Task<IReadOnlyList<DescribedResource>> WorkersAsync()
    {
        var workers = (await Dashboard.Platform.DescribeAsync(cancellationToken: Ct)).Where(r => r.DisplayName == "model-worker").OrderBy(r => r.Name, StringComparer.Ordinal).ToList();
        Assert.Equal(2, workers.Count);
        return workers;
    }
}
