using System.Diagnostics;
using System.Globalization;
using Platform.TestSupport;

namespace Platform.Hosting.Tests;

/// <summary>
/// The AppHost as a separate process, as users run it (the built executable, and <c>dotnet aspire run</c>): it comes up with every
/// resource Running and Healthy as <c>dotnet aspire describe</c> lists them, and after SIGINT, SIGTERM or SIGKILL nothing of it
/// outlives it: not DCP, the dashboard, a server or a service. One platform start per case, so the class stays a few minutes.
/// </summary>
public sealed class AppHostProcessTests(ITestOutputHelper output)
{
    /// <summary>
    /// How long everything may take to be gone. SIGKILL of the AppHost leaves the cleanup to DCP, which notices its monitored
    /// process is gone, stops the resources gently first and kills what does not stop.
    /// </summary>
    private static readonly TimeSpan ExitBound = TimeSpan.FromSeconds(60);

    /// <summary>Every resource the AppHost declares, by its name in the AppHost, with how many instances it runs.</summary>
    private static readonly Dictionary<string, int> ExpectedResources = new(StringComparer.Ordinal)
    {
        ["postgres"] = 1,
        ["platformdb"] = 1,
        ["redis"] = 1,
        ["objectstore"] = 1,
        ["admin-api"] = 1,
        ["model-worker"] = 2,
        ["context-enrichment"] = 1,
        ["inference-api"] = 1,
    };

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<AppHostLaunch, StopSignal> Cases => new()
    {
        { AppHostLaunch.Executable, StopSignal.Interrupt },
        { AppHostLaunch.Executable, StopSignal.Terminate },
        { AppHostLaunch.Executable, StopSignal.Kill },
        { AppHostLaunch.AspireRun, StopSignal.Interrupt },
        { AppHostLaunch.AspireRun, StopSignal.Terminate },
        { AppHostLaunch.AspireRun, StopSignal.Kill },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task EveryResourceComesUpHealthyAndNothingOutlivesTheSignal(AppHostLaunch launch, StopSignal signal)
    {
        await using var platform = await AppHostProcess.StartAsync(launch, Ct);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{launch}: start -> all {platform.ReportedResources} resources healthy in {platform.ReportedStartup.TotalSeconds:F1} s (reported by the AppHost)"));

        // What `dotnet aspire describe --format Json` run from the repository root says, as a user would run it (with the
        // hidden resources, to see the dashboard's process too). Health checks keep running after the start-up report: wait
        // for one description with every resource Running and Healthy, then check it in detail.
        var described = await platform.DescribeUntilAsync(
            resources => ExpectedResources.All(e => resources.Count(r => r.DisplayName == e.Key && r.IsRunningAndHealthy) == e.Value),
            "every resource Running and Healthy", includeHidden: true, cancellationToken: Ct);
        var listing = "\n  " + string.Join("\n  ", described);
        foreach (var (name, instances) in ExpectedResources)
        {
            var found = described.Where(r => r.DisplayName == name).ToList();
            Assert.True(found.Count == instances, $"describe lists {found.Count} instance(s) of '{name}', expected {instances}:{listing}");
            Assert.All(found, r => Assert.True(r.IsRunningAndHealthy, $"{r}{listing}"));
        }

        // Every process resource has its pid and URL (a database inside postgres is neither a process nor has a URL).
        var processResources = described.Where(r => ExpectedResources.ContainsKey(r.DisplayName) && r.DisplayName != "platformdb").ToList();
        Assert.All(processResources, r => Assert.True(r.ProcessId is > 0 && r.Urls.Count > 0, $"no pid or URL: {r}{listing}"));

        // The processes to watch: the AppHost (and aspire CLI), DCP, the dashboard, and every server and service, which must
        // be the very processes describe names.
        var processes = platform.Processes();
        var tree = "\n  " + string.Join("\n  ", processes);
        Assert.All(processResources, r => Assert.True(processes.Any(p => p.Id == r.ProcessId), $"{r} is not among the platform's processes:{tree}"));
        Assert.Contains(processes, p => p.Id == platform.AppHostProcessId);
        Assert.True(processes.Any(p => p.Program == "dcp"), $"no DCP process:{tree}");
        // The dashboard is a hidden resource: describe lists it only when asked to.
        var dashboard = described.SingleOrDefault(r => r.DisplayName == "aspire-dashboard");
        Assert.True(dashboard is { State: "Running", ProcessId: > 0 }, $"describe --include-hidden lists no running dashboard: {dashboard}");
        Assert.True(processes.Any(p => p.Id == dashboard.ProcessId && p.Program == "Aspire.Dashboard"), $"the dashboard ({dashboard}) is not among the platform's processes:{tree}");
        if (launch == AppHostLaunch.AspireRun)
        {
            Assert.Contains(processes, p => p.Id == platform.AspireCliProcessId);
        }

        var stopwatch = Stopwatch.StartNew();
        platform.Signal(signal);
        var survivors = await AppHostProcess.WaitForExitAsync(processes, ExitBound, Ct);
        Assert.True(survivors.Count == 0,
            $"{survivors.Count} of {processes.Count} processes still run {ExitBound.TotalSeconds:0} s after {signal} of the {(launch == AppHostLaunch.AspireRun ? "aspire CLI" : "AppHost")}:\n  "
            + string.Join("\n  ", survivors) + "\n--- output:\n" + platform.RecentOutput(40));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{launch}: {signal} -> all {processes.Count} processes gone in {stopwatch.Elapsed.TotalSeconds:F1} s"));
    }
}
