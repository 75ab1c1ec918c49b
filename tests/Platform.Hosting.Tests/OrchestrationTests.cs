using System.Diagnostics;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Platform.Hosting.ApplicationModel;
using Platform.Hosting.Testing;

namespace Platform.Hosting.Tests;

/// <summary>Run mode with real processes: waits, failures, diagnostics, restarts and shutdown.</summary>
public sealed class OrchestrationTests
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task WaitForStartsADependantOnlyOnceTheDependencyIsHealthy()
    {
        var builder = TestApps.CreateBuilder();
        var cache = builder.AddRedis("cache");
        // Pings Redis the moment it starts: PONG proves Redis was already up.
        builder.AddExecutable("pinger", "sh", ".", "-c",
                "cs=\"$ConnectionStrings__cache\"; hp=${cs%%,*}; pw=${cs#*password=}; " +
                "redis-cli -h ${hp%:*} -p ${hp#*:} -a \"$pw\" --no-auth-warning ping")
            .WithReference(cache).WaitFor(cache);
        await using var app = builder.Build();
        await app.StartAsync(Ct);

        var done = await app.ResourceNotifications.WaitForResourceAsync("pinger",
            s => s.State is KnownResourceStates.Finished or KnownResourceStates.Exited, Ct).WaitAsync(TimeSpan.FromSeconds(30), Ct);
        Assert.Equal(0, done.ExitCode);
        Assert.Contains(app.ResourceLogs.GetLines("pinger"), l => l.Text == "PONG");
    }

    [Fact]
    public async Task WaitForCompletionStartsAfterTheDependencyExited()
    {
        var builder = TestApps.CreateBuilder();
        var first = builder.AddExecutable("first", "sh", ".", "-c", "sleep 0.3; echo first-done");
        builder.AddExecutable("second", "sh", ".", "-c", "echo second-started; sleep 30").WaitForCompletion(first);
        await using var app = builder.Build();
        await app.StartAsync(Ct);

        var second = await app.ResourceNotifications.WaitForResourceAsync("second", KnownResourceStates.Running, Ct).WaitAsync(TimeSpan.FromSeconds(20), Ct);
        var firstSnapshot = app.ResourceNotifications.TryGet("first")!;
        Assert.Equal(KnownResourceStates.Exited, firstSnapshot.State);
        Assert.True(second.StartedAt >= firstSnapshot.Replicas[0].StoppedAt, "second started before first exited");
    }

    [Fact]
    public async Task AProcessThatExitsBeforeItIsHealthyFailsFastWithItsOutput()
    {
        var builder = TestApps.CreateBuilder();
        builder.AddExecutable("crasher", "sh", ".", "-c", "echo boom-on-stderr >&2; exit 3")
            .WithHttpEndpoint().WithHttpHealthCheck("/health");
        await using var app = builder.Build();
        await app.StartAsync(Ct);

        var sw = Stopwatch.StartNew();
        var ex = await Assert.ThrowsAsync<DistributedApplicationException>(() => app.WaitForResourceHealthyAsync("crasher", cancellationToken: Ct));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"took {sw.Elapsed}");
        Assert.Contains("FailedToStart", ex.Message, StringComparison.Ordinal);
        Assert.Contains("exit code 3", ex.Message, StringComparison.Ordinal);
        Assert.Contains("boom-on-stderr", ex.Message, StringComparison.Ordinal);
        Assert.Equal(3, app.ResourceNotifications.TryGet("crasher")!.ExitCode);
    }

    [Fact]
    public async Task ADependantOfAFailedResourceFailsInsteadOfWaitingForever()
    {
        var builder = TestApps.CreateBuilder();
        var broken = builder.AddExecutable("broken", "sh", ".", "-c", "exit 1").WithHttpEndpoint().WithHttpHealthCheck();
        builder.AddExecutable("dependant", "sleep", ".", "30").WaitFor(broken);
        await using var app = builder.Build();
        await app.StartAsync(Ct);

        var ex = await Assert.ThrowsAsync<DistributedApplicationException>(() => app.WaitForResourceHealthyAsync("dependant", TimeSpan.FromSeconds(20), Ct));
        Assert.Contains("'broken'", ex.Message, StringComparison.Ordinal);
        Assert.Equal(KnownResourceStates.FailedToStart, app.ResourceNotifications.TryGet("dependant")!.State);
    }

    [Fact]
    public async Task WaitingForAnUnknownResourceFailsAtOnce()
    {
        var builder = TestApps.CreateBuilder();
        builder.AddExecutable("real", "sleep", ".", "30");
        await using var app = builder.Build();
        await app.StartAsync(Ct);
        var ex = await Assert.ThrowsAsync<DistributedApplicationException>(() =>
            app.ResourceNotifications.WaitForResourceHealthyAsync("imaginary", Ct).WaitAsync(TimeSpan.FromSeconds(2), Ct));
        Assert.Contains("Unknown resource 'imaginary'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("real", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ATimeoutQuotesHealthReportAndLastLogLines()
    {
        var builder = TestApps.CreateBuilder();
        builder.AddExecutable("never-ready", "sh", ".", "-c", "echo warming-up-forever; exec sleep 60")
            .WithHttpEndpoint().WithHttpHealthCheck("/health");
        await using var app = builder.Build();
        await app.StartAsync(Ct);

        var ex = await Assert.ThrowsAsync<TimeoutException>(() => app.WaitForResourceHealthyAsync("never-ready", TimeSpan.FromSeconds(2), Ct));
        Assert.Contains("within 2 s", ex.Message, StringComparison.Ordinal);
        Assert.Contains("check http /health: Unhealthy", ex.Message, StringComparison.Ordinal);
        Assert.Contains("warming-up-forever", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AMissingProgramFailsWithItsName()
    {
        var builder = TestApps.CreateBuilder();
        builder.AddExecutable("ghost", "/nonexistent/bin/ghost-server", ".");
        await using var app = builder.Build();
        await app.StartAsync(Ct);
        var ex = await Assert.ThrowsAsync<DistributedApplicationException>(() => app.WaitForResourceHealthyAsync("ghost", TimeSpan.FromSeconds(10), Ct));
        Assert.Contains("/nonexistent/bin/ghost-server", ex.Message, StringComparison.Ordinal);
        Assert.Contains("not found", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RestartingAServerKeepsItsPortAndDependantsSeeItRecover()
    {
        var builder = TestApps.CreateBuilder();
        builder.AddRedis("cache");
        await using var app = builder.Build();
        await app.StartAsync(Ct);
        var before = await app.WaitForResourceHealthyAsync("cache", cancellationToken: Ct);

        await app.Orchestrator.StopResourceAsync("cache");
        var stopped = app.ResourceNotifications.TryGet("cache")!;
        Assert.Equal(KnownResourceStates.Finished, stopped.State);
        Assert.False(IsRunning(before.Pids[0]));

        await app.Orchestrator.StartResourceAsync("cache", cancellationToken: Ct);
        var after = await app.WaitForResourceHealthyAsync("cache", cancellationToken: Ct);
        Assert.NotEqual(before.Pids[0], after.Pids[0]);
        Assert.Equal(before.Endpoints[0].Url, after.Endpoints[0].Url);
        Assert.Equal(1, after.Replicas[0].Restarts);
        Assert.Equal(HealthStatus.Healthy, after.Health);
    }

    [Fact]
    public async Task DisposingTheAppStopsEveryProcessWithinSeconds()
    {
        var builder = TestApps.CreateBuilder();
        var cache = builder.AddRedis("cache");
        var pg = builder.AddPostgres("pg");
        builder.AddExecutable("sleeper", "sleep", ".", "300").WaitFor(cache);
        var app = builder.Build();
        await app.StartAsync(Ct);
        await app.WaitForResourceHealthyAsync("pg", cancellationToken: Ct);
        var sleeper = await app.WaitForResourceHealthyAsync("sleeper", cancellationToken: Ct);
        var pids = app.ResourceNotifications.GetAll().SelectMany(s => s.Pids).ToList();
        Assert.Equal(3, pids.Count);
        Assert.NotEmpty(sleeper.Pids);

        var sw = Stopwatch.StartNew();
        await app.DisposeAsync();
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"stopping took {sw.Elapsed}");
        Assert.All(pids, pid => Assert.False(IsRunning(pid), $"pid {pid} still running"));
        Assert.All(app.ResourceNotifications.GetAll().Where(s => s.Type != "Parameter"),
            s => Assert.Equal(KnownResourceStates.Finished, s.State));
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..][0];
            return state is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }
}
