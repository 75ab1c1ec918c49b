using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Platform.TestSupport;

/// <summary>How <see cref="AppHostProcess"/> starts the platform.</summary>
public enum AppHostLaunch
{
    /// <summary>The built AppHost executable (<c>AppHost/bin/&lt;Configuration&gt;/net10.0/Platform.AppHost</c>), as <c>dotnet run</c> ends up running it.</summary>
    Executable,

    /// <summary>
    /// <c>dotnet aspire run --apphost AppHost/Platform.AppHost.csproj --isolated --non-interactive --no-build</c> from the repository
    /// root: the aspire CLI (a local tool) launches the built AppHost and watches it.
    /// </summary>
    AspireRun,
}

/// <summary>The POSIX signals the platform is stopped with (the values are Linux's signal numbers).</summary>
public enum StopSignal
{
    /// <summary>SIGINT, what Ctrl+C sends.</summary>
    Interrupt = 2,

    /// <summary>SIGKILL: no chance to clean up.</summary>
    Kill = 9,

    /// <summary>SIGTERM, what <c>kill</c>, systemd and container runtimes send first.</summary>
    Terminate = 15,
}

/// <summary>One resource as <c>aspire describe --format Json</c> lists it (one entry per replica).</summary>
/// <param name="Name">Unique name (a replica's has a suffix, e.g. <c>model-worker-abcd1234</c>).</param>
/// <param name="DisplayName">The resource's name in the AppHost (e.g. <c>model-worker</c>).</param>
/// <param name="ResourceType">E.g. <c>Project</c>, <c>Executable</c>, <c>Parameter</c>.</param>
/// <param name="State">E.g. <c>Running</c>.</param>
/// <param name="HealthStatus">E.g. <c>Healthy</c>; null when the resource reports none.</param>
/// <param name="ProcessId">The process id DCP reports (<c>executable.pid</c>); null for resources that are not processes.</param>
/// <param name="Urls">The resource's URLs by endpoint name (<c>http</c>, <c>grpc</c>, ...).</param>
/// <param name="Environment">The environment the resource was started with (secrets included: describe runs on this machine).</param>
/// <param name="DashboardUrl">The resource's page on the dashboard.</param>
public sealed record DescribedResource(
    string Name,
    string DisplayName,
    string ResourceType,
    string? State,
    string? HealthStatus,
    int? ProcessId,
    IReadOnlyDictionary<string, Uri> Urls,
    IReadOnlyDictionary<string, string?> Environment,
    Uri? DashboardUrl)
{
    /// <summary>Running, and Healthy.</summary>
    public bool IsRunningAndHealthy => State == "Running" && HealthStatus == "Healthy";

    /// <inheritdoc />
    public override string ToString() =>
        $"{Name} ({DisplayName}, {ResourceType}): {State ?? "?"} / {HealthStatus ?? "-"}, pid {ProcessId?.ToString(CultureInfo.InvariantCulture) ?? "-"}, urls [{string.Join(", ", Urls.Select(u => $"{u.Key}={u.Value}"))}]";
}

/// <summary>A process of a running platform, identified by its id and start time (ids are reused once a process is gone).</summary>
/// <param name="Id">Process id.</param>
/// <param name="StartTime">Start time in clock ticks since boot (<c>/proc/&lt;pid&gt;/stat</c> field 22).</param>
/// <param name="Command">Its command line.</param>
public sealed record PlatformProcess(int Id, long StartTime, string Command)
{
    /// <summary>The file name of the program (e.g. <c>dcp</c>, <c>Aspire.Dashboard</c>, <c>redis-server</c>).</summary>
    public string Program => Path.GetFileName(Command.Split(' ', 2)[0]);

    /// <inheritdoc />
    public override string ToString() => $"{Id} {(Command.Length > 160 ? Command[..160] + "…" : Command)}";
}

/// <summary>
/// The AppHost as users run it: its own process (the built executable, or through <c>dotnet aspire run</c>) with throw-away data,
/// a fixed admin key, and the Aspire dashboard on a free port over plain HTTP with a fixed browser token. Reads the login URL
/// and the AppHost's "Platform is up … s after start" line, lists resources through <c>dotnet aspire describe --format Json</c>,
/// sends signals, and finds every process of the platform (the AppHost, the aspire CLI, DCP, the dashboard, the servers and
/// services) so a test can check none outlives it. Disposing stops whatever is still running and deletes the data.
/// Linux only: processes are read from <c>/proc</c>.
/// </summary>
public sealed partial class AppHostProcess : IAsyncDisposable
{
    /// <summary>The AppHost project, relative to the repository root (as <c>--apphost</c> takes it).</summary>
    public const string AppHostProject = "AppHost/Platform.AppHost.csproj";

    /// <summary>How long the whole platform may take to come up on a loaded 2-core machine.</summary>
    public static readonly TimeSpan StartTimeout = PlatformApp.StartTimeout;

    private const int OutputLines = 2000;

    private static readonly Lazy<string> Root = new(FindRepositoryRoot);

    private readonly ConcurrentQueue<string> _output = new();
    private readonly ConcurrentDictionary<(int, long), PlatformProcess> _seen = new();
    private readonly TaskCompletionSource<Uri> _login = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<(int Resources, double Seconds)> _up = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<string> _logFile = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stopping = new();
    private readonly DirectoryInfo _data;
    private readonly Process _process;
    private readonly PlatformProcess _launched;
    private Task? _tailing;
    private bool _disposed;

    private AppHostProcess(AppHostLaunch launch, Process process, DirectoryInfo data, string adminApiKey, string browserToken)
    {
        Launch = launch;
        _process = process;
        _data = data;
        AdminApiKey = adminApiKey;
        BrowserToken = browserToken;
        _launched = ReadProcess(process.Id) ?? new PlatformProcess(process.Id, 0, "?");
        _seen[(_launched.Id, _launched.StartTime)] = _launched;
    }

    /// <summary>The repository root (the folder with <c>Platform.sln</c>), found upwards from the test's output folder.</summary>
    public static string RepositoryRoot => Root.Value;

    /// <summary>The build configuration of the tests, and so of the AppHost they built.</summary>
    public static string Configuration { get; } =
        typeof(AppHostProcess).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";

    /// <summary>The built AppHost executable.</summary>
    public static string AppHostExecutable => Path.Combine(RepositoryRoot, "AppHost", "bin", Configuration, "net10.0", "Platform.AppHost");

    /// <summary>How it was started.</summary>
    public AppHostLaunch Launch { get; }

    /// <summary>AdminApi's key (the AppHost's <c>admin-api-key</c> parameter).</summary>
    public string AdminApiKey { get; }

    /// <summary>The dashboard's browser token.</summary>
    public string BrowserToken { get; }

    /// <summary>The dashboard's login URL as the AppHost (or the aspire CLI) printed it.</summary>
    public Uri LoginUrl { get; private set; } = null!;

    /// <summary>The dashboard's address (scheme, host and port).</summary>
    public Uri DashboardUrl { get; private set; } = null!;

    /// <summary>Start → every resource Running and Healthy, as the AppHost reported it.</summary>
    public TimeSpan ReportedStartup { get; private set; }

    /// <summary>How many resource instances the AppHost counted in its report.</summary>
    public int ReportedResources { get; private set; }

    /// <summary>Where the platform's servers keep their data (deleted on dispose).</summary>
    public string DataDirectory => _data.FullName;

    /// <summary>The process this started: the AppHost, or <c>dotnet aspire run</c>.</summary>
    public int LaunchedProcessId => _launched.Id;

    /// <summary>The AppHost's process.</summary>
    public int AppHostProcessId { get; private set; }

    /// <summary>With <see cref="AppHostLaunch.AspireRun"/>, the aspire CLI's own process (the <c>dotnet</c> tool host's child).</summary>
    public int? AspireCliProcessId { get; private set; }

    /// <summary>The last <paramref name="lines"/> lines of output (and, with <c>aspire run</c>, of the CLI's log).</summary>
    public string RecentOutput(int lines = 60) => string.Join('\n', _output.TakeLast(lines));

    /// <summary>Starts the platform and waits until the AppHost reports every resource Running and Healthy.</summary>
    public static async Task<AppHostProcess> StartAsync(AppHostLaunch launch = AppHostLaunch.Executable, CancellationToken cancellationToken = default)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("AppHostProcess reads processes from /proc and signals them: Linux only.");
        }

        if (!File.Exists(AppHostExecutable))
        {
            throw new InvalidOperationException($"{AppHostExecutable} does not exist: build the test project ({Configuration}); it builds the AppHost.");
        }

        // The aspire CLI is a local tool: `aspire run` and `aspire describe` need it restored (a no-op once it is).
        await RunToolAsync(["tool", "restore"], TimeSpan.FromMinutes(2), cancellationToken);

        var data = Directory.CreateTempSubdirectory("platform-apphost-");
        // Postgres runs as its own user when the tests run as root: it must be able to reach its folder.
        File.SetUnixFileMode(data.FullName, (UnixFileMode)0b111_101_101);
        var adminApiKey = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
        var browserToken = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        string[] appHostArguments = [$"--Platform:DataDirectory={data.FullName}", "--Platform:DurableData=false", $"--Parameters:admin-api-key={adminApiKey}"];

        // Through env(1) so SIGINT and SIGTERM have their default handling whatever the test runner ignores (a shell running
        // it in the background ignores SIGINT, and .NET keeps an inherited "ignore"): Ctrl+C in a terminal is what is tested.
        var start = new ProcessStartInfo("/usr/bin/env")
        {
            WorkingDirectory = RepositoryRoot,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        start.ArgumentList.Add("--default-signal=INT,TERM");
        if (launch == AppHostLaunch.Executable)
        {
            start.ArgumentList.Add(AppHostExecutable);
            // What the AppHost's launch profile sets under `dotnet run` (the executable alone has no launch profile).
            start.Environment["DOTNET_ENVIRONMENT"] = "Development";
            start.Environment["ASPNETCORE_ENVIRONMENT"] = "Development";
        }
        else
        {
            // --no-build: the tests' build built the AppHost; the CLI's own build would take minutes on a loaded machine.
            foreach (var argument in (string[])["dotnet", "aspire", "run", "--apphost", AppHostProject, "--isolated", "--non-interactive", "--no-build", "--"])
            {
                start.ArgumentList.Add(argument);
            }
        }

        foreach (var argument in appHostArguments)
        {
            start.ArgumentList.Add(argument);
        }

        ConfigureEnvironment(start.Environment);
        // Aspire's settings for the dashboard: with no ASPNETCORE_URLS (nor OTLP/resource-service URLs) it takes free ports;
        // plain HTTP needs ASPIRE_ALLOW_UNSECURED_TRANSPORT; the AppHost hands this token to the dashboard as
        // Dashboard:Frontend:BrowserToken.
        start.Environment["ASPIRE_ALLOW_UNSECURED_TRANSPORT"] = "true";
        start.Environment["ASPIRE_DASHBOARD_FRONTEND_BROWSERTOKEN"] = browserToken;

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        AppHostProcess? platform = null;
        process.OutputDataReceived += (_, e) => platform?.OnLine(e.Data, fromLog: false);
        process.ErrorDataReceived += (_, e) => platform?.OnLine(e.Data, fromLog: false);
        process.Start();
        platform = new AppHostProcess(launch, process, data, adminApiKey, browserToken);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await platform.WaitUntilUpAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or OperationCanceledException)
        {
            var output = platform.RecentOutput(120);
            await platform.DisposeAsync();
            throw new InvalidOperationException($"The platform did not come up ({launch}): {ex.Message}\n--- output:\n{output}", ex);
        }

        return platform;
    }

    /// <summary>
    /// Runs <c>dotnet aspire describe --format Json --apphost AppHost/Platform.AppHost.csproj</c> from the repository root and
    /// returns its resources. Fails when describe answers for another AppHost of the same project (their dashboards differ).
    /// </summary>
    public async Task<IReadOnlyList<DescribedResource>> DescribeAsync(bool includeHidden = false, CancellationToken cancellationToken = default)
    {
        List<string> arguments = ["aspire", "describe", "--format", "Json", "--apphost", AppHostProject, "--non-interactive", "--nologo"];
        if (includeHidden)
        {
            arguments.Add("--include-hidden");
        }

        var (exitCode, stdout, stderr) = await RunToolAsync(arguments, TimeSpan.FromMinutes(1), cancellationToken);
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"dotnet {string.Join(' ', arguments)} exited with {exitCode}:\n{stdout}\n{stderr}");
        }

        var json = stdout.IndexOf('{', StringComparison.Ordinal) is var brace and >= 0 ? stdout[brace..] : stdout;
        IReadOnlyList<DescribedResource> resources;
        try
        {
            using var document = JsonDocument.Parse(json);
            resources = [.. document.RootElement.GetProperty("resources").EnumerateArray().Select(ParseResource)];
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new InvalidOperationException($"dotnet {string.Join(' ', arguments)} did not answer the JSON expected ({ex.Message}):\n{stdout}\n{stderr}", ex);
        }

        var foreign = resources.FirstOrDefault(r => r.DashboardUrl is { } url && url.Authority != DashboardUrl.Authority);
        return foreign is null
            ? resources
            : throw new InvalidOperationException(
                $"aspire describe answered for another running AppHost of {AppHostProject} (dashboard {foreign.DashboardUrl!.Authority}, ours {DashboardUrl.Authority}): run one at a time.");
    }

    /// <summary>
    /// Describes the platform until every resource it lists (parameters aside) is Running and Healthy (health checks keep
    /// running after the start-up report) and returns that description; fails with the last one.
    /// </summary>
    public Task<IReadOnlyList<DescribedResource>> DescribeWhenHealthyAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        DescribeUntilAsync(resources => resources.All(r => r.ResourceType == "Parameter" || r.IsRunningAndHealthy), "every resource Running and Healthy",
            includeHidden: false, timeout, cancellationToken);

    /// <summary>Describes the platform until <paramref name="done"/> holds and returns that description; fails with the last one.</summary>
    public async Task<IReadOnlyList<DescribedResource>> DescribeUntilAsync(Func<IReadOnlyList<DescribedResource>, bool> done, string what,
        bool includeHidden = false, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(done);
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var resources = await DescribeAsync(includeHidden, cancellationToken);
            if (done(resources))
            {
                return resources;
            }

            if (deadline.Elapsed > (timeout ?? TimeSpan.FromSeconds(90)))
            {
                throw new TimeoutException($"aspire describe never showed {what}; last:\n  {string.Join("\n  ", resources)}");
            }

            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
        }
    }

    /// <summary>The URL of endpoint <paramref name="endpoint"/> of the resource named <paramref name="resource"/> (its name in the AppHost), from describe.</summary>
    public async Task<Uri> EndpointAsync(string resource, string endpoint = "http", CancellationToken cancellationToken = default)
    {
        var described = await DescribeAsync(cancellationToken: cancellationToken);
        return described.FirstOrDefault(r => r.DisplayName == resource && r.Urls.ContainsKey(endpoint))?.Urls[endpoint]
            ?? throw new InvalidOperationException($"aspire describe lists no URL for '{resource}':\n  {string.Join("\n  ", described)}");
    }

    /// <summary>
    /// Every process of the platform now: what was started and its descendants, and DCP (which detaches from the AppHost and
    /// watches it through <c>--monitor &lt;pid&gt;</c>) with everything it runs: the dashboard, servers and services.
    /// </summary>
    public IReadOnlyList<PlatformProcess> Processes()
    {
        var table = ReadProcessTable();
        var members = new HashSet<int> { _launched.Id };
        bool grew;
        do
        {
            grew = false;
            foreach (var (pid, entry) in table)
            {
                if (members.Contains(pid))
                {
                    continue;
                }

                if (members.Contains(entry.ParentId) || MonitoredProcess(entry.Arguments) is { } monitored && members.Contains(monitored))
                {
                    grew |= members.Add(pid);
                }
            }
        }
        while (grew);

        var processes = members.Where(table.ContainsKey)
            .Select(pid => new PlatformProcess(pid, table[pid].StartTime, string.Join(' ', table[pid].Arguments)))
            .Where(p => p.Id != _launched.Id || p.StartTime == _launched.StartTime)
            .OrderBy(p => p.Id)
            .ToList();
        foreach (var process in processes)
        {
            _seen[(process.Id, process.StartTime)] = process;
        }

        return processes;
    }

    /// <summary>
    /// Sends <paramref name="signal"/> the way a user stops the platform: to the AppHost, or with <c>aspire run</c> to the aspire
    /// CLI (the process <c>aspire run</c> is; the <c>dotnet</c> tool host in front of it only passes signals on).
    /// </summary>
    public void Signal(StopSignal signal) => Send(Launch == AppHostLaunch.AspireRun ? AspireCliProcessId!.Value : AppHostProcessId, signal);

    /// <summary>Sends <paramref name="signal"/> to one process of this platform.</summary>
    public void Send(int processId, StopSignal signal)
    {
        if (!_seen.Keys.Any(k => k.Item1 == processId))
        {
            throw new InvalidOperationException($"Process {processId} is not one of this platform's.");
        }

        if (Kill(processId, (int)signal) != 0)
        {
            throw new InvalidOperationException($"kill({processId}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}.");
        }
    }

    /// <summary>Waits until none of <paramref name="processes"/> is running (or <paramref name="bound"/> passes); returns those still running.</summary>
    public static async Task<IReadOnlyList<PlatformProcess>> WaitForExitAsync(IReadOnlyCollection<PlatformProcess> processes, TimeSpan bound,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(processes);
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var running = processes.Where(IsRunning).ToList();
            if (running.Count == 0 || deadline.Elapsed >= bound)
            {
                return running;
            }

            await Task.Delay(100, cancellationToken);
        }
    }

    /// <summary>Whether the process (this id with this start time) is still running: not gone, not a zombie waiting to be reaped.</summary>
    public static bool IsRunning(PlatformProcess process)
    {
        ArgumentNullException.ThrowIfNull(process);
        return ReadStat(process.Id) is { } stat && stat.StartTime == process.StartTime && stat.State is not ('Z' or 'X');
    }

    /// <summary>
    /// Stops whatever of the platform still runs (SIGTERM to what was started, then SIGKILL to every process of it seen so far
    /// that outlives a grace period) and deletes the data.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        var remaining = Processes().Concat(_seen.Values).DistinctBy(p => (p.Id, p.StartTime)).Where(IsRunning).ToList();
        if (remaining.Count > 0)
        {
            if (IsRunning(_launched))
            {
                _ = Kill(_launched.Id, (int)StopSignal.Terminate);
            }

            remaining = [.. await WaitForExitAsync(remaining, TimeSpan.FromSeconds(60))];
            foreach (var process in remaining)
            {
                _ = Kill(process.Id, (int)StopSignal.Kill);
            }

            await WaitForExitAsync(remaining, TimeSpan.FromSeconds(10));
        }

        await _stopping.CancelAsync();
        if (_tailing is not null)
        {
            await _tailing.ContinueWith(_ => { }, TaskScheduler.Default);
        }

        try
        {
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
        }

        _process.Dispose();
        _stopping.Dispose();
        try
        {
            _data.Delete(recursive: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A server still flushing; the temp folder is cleaned by the OS eventually.
        }
    }

    private async Task WaitUntilUpAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(StartTimeout);
        // Completes when the process exits (not waiting for its output to close: DCP may hold it), or when the time is up.
        var exitedSource = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _process.Exited += (_, _) => exitedSource.TrySetResult();
        if (_process.HasExited)
        {
            exitedSource.TrySetResult();
        }

        using var registration = timeout.Token.Register(() => exitedSource.TrySetCanceled(timeout.Token));
        var exited = exitedSource.Task;
        async Task<T> OrExitAsync<T>(Task<T> task, string what)
        {
            var first = await Task.WhenAny(task, exited);
            if (first == task)
            {
                return await task;
            }

            if (first == exited && exited.IsCompletedSuccessfully)
            {
                throw new InvalidOperationException($"{Path.GetFileName(_process.StartInfo.ArgumentList[1])} exited with code {_process.ExitCode} before {what}.");
            }

            cancellationToken.ThrowIfCancellationRequested();
            throw new TimeoutException($"No {what} within {StartTimeout.TotalMinutes:0} minutes.");
        }

        var login = await OrExitAsync(_login.Task, "the dashboard's login URL");
        LoginUrl = login;
        DashboardUrl = new Uri(login.GetLeftPart(UriPartial.Authority));
        if (Launch == AppHostLaunch.AspireRun)
        {
            // The CLI shows the AppHost's output only in its log file.
            var log = await OrExitAsync(_logFile.Task, "the aspire CLI's log file");
            _tailing = TailAsync(log, _stopping.Token);
        }

        var (resources, seconds) = await OrExitAsync(_up.Task, "the AppHost's \"Platform is up\" report");
        ReportedResources = resources;
        ReportedStartup = TimeSpan.FromSeconds(seconds);

        var processes = Processes();
        AppHostProcessId = Launch == AppHostLaunch.Executable
            ? _launched.Id
            : processes.FirstOrDefault(p => p.Program == "Platform.AppHost")?.Id
                ?? throw new InvalidOperationException($"aspire run is up but no Platform.AppHost process runs under it:\n  {string.Join("\n  ", processes)}");
        if (Launch == AppHostLaunch.AspireRun)
        {
            AspireCliProcessId = processes.FirstOrDefault(p => p.Program == "aspire" && p.Id != _launched.Id)?.Id
                ?? throw new InvalidOperationException($"No aspire CLI process under dotnet aspire run:\n  {string.Join("\n  ", processes)}");
        }
    }

    private void OnLine(string? raw, bool fromLog)
    {
        if (raw is null)
        {
            return;
        }

        var line = Escapes().Replace(raw, string.Empty);
        _output.Enqueue(fromLog ? "log | " + line : line);
        while (_output.Count > OutputLines && _output.TryDequeue(out _))
        {
        }

        if (LoginLine().Match(line) is { Success: true } login)
        {
            _login.TrySetResult(new Uri(login.Groups["url"].Value));
        }

        if (LogFileLine().Match(line) is { Success: true } log)
        {
            _logFile.TrySetResult(log.Groups["path"].Value);
        }

        if (UpLine().Match(line) is { Success: true } up)
        {
            _up.TrySetResult((int.Parse(up.Groups["count"].Value, CultureInfo.InvariantCulture),
                double.Parse(up.Groups["seconds"].Value, CultureInfo.InvariantCulture)));
        }
        else if (line.Contains("Platform did not come up:", StringComparison.Ordinal))
        {
            _up.TrySetException(new InvalidOperationException(line.Trim()));
        }
    }

    /// <summary>Follows the aspire CLI's log file (it is written as the AppHost runs).</summary>
    private async Task TailAsync(string path, CancellationToken cancellationToken)
    {
        try
        {
            await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            var partial = new StringBuilder();
            var buffer = new char[8192];
            while (!cancellationToken.IsCancellationRequested)
            {
                var read = await reader.ReadAsync(buffer, cancellationToken);
                if (read == 0)
                {
                    await Task.Delay(200, cancellationToken);
                    continue;
                }

                partial.Append(buffer, 0, read);
                var text = partial.ToString();
                var end = text.LastIndexOf('\n');
                if (end < 0)
                {
                    continue;
                }

                foreach (var line in text[..end].Split('\n'))
                {
                    OnLine(line.TrimEnd('\r'), fromLog: true);
                }

                partial.Clear().Append(text[(end + 1)..]);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (IOException ex)
        {
            _up.TrySetException(new InvalidOperationException($"Cannot read the aspire CLI's log {path}: {ex.Message}", ex));
        }
    }

    private static void ConfigureEnvironment(IDictionary<string, string?> environment)
    {
        // Nothing from the test runner's environment may pin ports, tokens or modes: remove Aspire's and the dashboard's
        // settings and the URLs ASP.NET Core would bind.
        foreach (var name in environment.Keys.Where(k => k.StartsWith("ASPIRE_", StringComparison.OrdinalIgnoreCase)
            || k.StartsWith("DOTNET_DASHBOARD_", StringComparison.OrdinalIgnoreCase)
            || k.StartsWith("DOTNET_RESOURCE_SERVICE_", StringComparison.OrdinalIgnoreCase)
            || k.StartsWith("DASHBOARD__", StringComparison.OrdinalIgnoreCase)
            || k.StartsWith("Parameters__", StringComparison.OrdinalIgnoreCase)
            || k is "ASPNETCORE_URLS" or "DOTNET_URLS" or "ASPNETCORE_HTTP_PORTS" or "ASPNETCORE_HTTPS_PORTS").ToList())
        {
            environment.Remove(name);
        }

        environment["ASPIRE_CLI_TELEMETRY_OPTOUT"] = "true";
        environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        environment["DOTNET_NOLOGO"] = "1";
        environment["NO_COLOR"] = "1";
    }

    private static async Task<(int ExitCode, string Stdout, string Stderr)> RunToolAsync(IEnumerable<string> arguments, TimeSpan timeout,
        CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = RepositoryRoot,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        ConfigureEnvironment(start.Environment);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken).WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"dotnet {string.Join(' ', start.ArgumentList)} did not finish within {timeout.TotalSeconds:0} s.");
        }

        return (process.ExitCode, await stdout, await stderr);
    }

    private static DescribedResource ParseResource(JsonElement resource)
    {
        static string? Text(JsonElement element, string name) =>
            element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

        var properties = resource.TryGetProperty("properties", out var p) && p.ValueKind == JsonValueKind.Object ? p : default;
        int? pid = properties.ValueKind == JsonValueKind.Object && properties.TryGetProperty("executable.pid", out var pidValue)
            && pidValue.ValueKind == JsonValueKind.Number ? pidValue.GetInt32() : null;
        var urls = resource.TryGetProperty("urls", out var u) && u.ValueKind == JsonValueKind.Array
            ? u.EnumerateArray().Where(x => Text(x, "url") is not null)
                .ToDictionary(x => Text(x, "name") ?? Text(x, "url")!, x => new Uri(Text(x, "url")!), StringComparer.Ordinal)
            : new Dictionary<string, Uri>(StringComparer.Ordinal);
        var environment = resource.TryGetProperty("environment", out var e) && e.ValueKind == JsonValueKind.Object
            ? e.EnumerateObject().ToDictionary(x => x.Name, x => x.Value.ValueKind == JsonValueKind.String ? x.Value.GetString() : x.Value.ToString(), StringComparer.Ordinal)
            : new Dictionary<string, string?>(StringComparer.Ordinal);
        return new DescribedResource(
            Text(resource, "name") ?? throw new KeyNotFoundException("name"),
            Text(resource, "displayName") ?? Text(resource, "name")!,
            Text(resource, "resourceType") ?? "?",
            Text(resource, "state"),
            Text(resource, "healthStatus"),
            pid,
            urls,
            environment,
            Text(resource, "dashboardUrl") is { } dashboard ? new Uri(dashboard) : null);
    }

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Platform.sln")) && File.Exists(Path.Combine(directory.FullName, AppHostProject)))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No repository root (Platform.sln beside {AppHostProject}) above {AppContext.BaseDirectory}.");
    }

    /// <summary>The pid after a <c>--monitor</c> argument (DCP's way of naming the process it lives and dies with).</summary>
    private static int? MonitoredProcess(IReadOnlyList<string> arguments)
    {
        for (var i = 0; i < arguments.Count - 1; i++)
        {
            if (arguments[i] == "--monitor" && int.TryParse(arguments[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                return pid;
            }
        }

        return null;
    }

    private static Dictionary<int, (int ParentId, long StartTime, string[] Arguments)> ReadProcessTable()
    {
        var table = new Dictionary<int, (int, long, string[])>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                || ReadStat(pid) is not { } stat || stat.State is 'Z' or 'X')
            {
                continue;
            }

            table[pid] = (stat.ParentId, stat.StartTime, ReadArguments(pid));
        }

        return table;
    }

    private static PlatformProcess? ReadProcess(int pid) =>
        ReadStat(pid) is { } stat ? new PlatformProcess(pid, stat.StartTime, string.Join(' ', ReadArguments(pid))) : null;

    /// <summary>State, parent and start time from <c>/proc/&lt;pid&gt;/stat</c> (the command name may hold spaces and parentheses).</summary>
    private static (char State, int ParentId, long StartTime)? ReadStat(int pid)
    {
        string text;
        try
        {
            text = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
        // After the command: state (3), ppid (4), … starttime (22).
        return (fields[0][0], int.Parse(fields[1], CultureInfo.InvariantCulture), long.Parse(fields[19], CultureInfo.InvariantCulture));
    }

    private static string[] ReadArguments(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    /// <summary>ANSI colour (CSI) and hyperlink (OSC 8) sequences the aspire CLI writes around URLs.</summary>
    [GeneratedRegex(@"\x1B\[[0-9;?]*[ -/]*[@-~]|\x1B\][^\x07\x1B]*(?:\x07|\x1B\\)")]
    private static partial Regex Escapes();

    [GeneratedRegex(@"(?<url>https?://[^\s/]+/login\?t=[0-9A-Za-z_-]+)")]
    private static partial Regex LoginLine();

    [GeneratedRegex(@"Logs:\s+(?:file://)?(?<path>/\S+\.log)")]
    private static partial Regex LogFileLine();

    [GeneratedRegex(@"Platform is up: (?<count>\d+) resources Running and Healthy (?<seconds>\d+(?:\.\d+)?) s after start")]
    private static partial Regex UpLine();
}
