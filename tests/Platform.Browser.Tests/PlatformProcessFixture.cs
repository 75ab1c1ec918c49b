using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;

[assembly: AssemblyFixture(typeof(Platform.Browser.Tests.PlatformProcessFixture))]

namespace Platform.Browser.Tests;

/// <summary>
/// The AppHost as a user runs it (its own process, dashboard on a free port, fixed token through
/// <c>PLATFORM_DASHBOARD_TOKEN</c>), plus one headless Debian Chromium shared by the tests.
/// </summary>
public sealed partial class PlatformProcessFixture : IAsyncLifetime
{
    private readonly ConcurrentQueue<string> _output = new();
    private Process? _appHost;
    private IPlaywright? _playwright;
    private string? _stateDirectory;

    public string Token { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    /// <summary>The AppHost's <c>admin-api-key</c> parameter, passed on its command line.</summary>
    public string AdminKey { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    public string DashboardUrl { get; private set; } = string.Empty;

    public string LoginUrl { get; private set; } = string.Empty;

    public IBrowser Browser { get; private set; } = null!;

    /// <summary>Where screenshots go: <c>$PLATFORM_ARTIFACTS_DIR/browser</c>, else <c>screenshots/</c> beside the tests.</summary>
    public string ScreenshotDirectory { get; } = Path.Combine(
        Environment.GetEnvironmentVariable("PLATFORM_ARTIFACTS_DIR") is { Length: > 0 } artifacts ? Path.Combine(artifacts, "browser") : Path.Combine(AppContext.BaseDirectory, "screenshots"));

    public string RecentOutput => string.Join('\n', _output.TakeLast(40));

    public async ValueTask InitializeAsync()
    {
        Directory.CreateDirectory(ScreenshotDirectory);
        _stateDirectory = Directory.CreateTempSubdirectory("platform-browser-").FullName;
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "Platform.AppHost.dll"), "--dashboard-port", "0", "--Platform:StateDirectory", _stateDirectory, "--Parameters:admin-api-key", AdminKey })
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["PLATFORM_DASHBOARD_TOKEN"] = Token;
        var dashboard = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var healthy = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _appHost = Process.Start(psi)!;
        _appHost.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            _output.Enqueue(e.Data);
            if (DashboardLine().Match(e.Data) is { Success: true } d)
            {
                DashboardUrl = d.Groups[1].Value;
            }

            if (LoginLine().Match(e.Data) is { Success: true } l)
            {
                LoginUrl = l.Groups[1].Value;
                dashboard.TrySetResult();
            }

            if (e.Data.Contains("resources healthy in", StringComparison.Ordinal))
            {
                healthy.TrySetResult();
            }
            else if (e.Data.Contains("Not every resource became healthy", StringComparison.Ordinal))
            {
                healthy.TrySetException(new InvalidOperationException(e.Data));
            }
        };
        _appHost.ErrorDataReceived += (_, e) => _output.Enqueue(e.Data ?? string.Empty);
        _appHost.BeginOutputReadLine();
        _appHost.BeginErrorReadLine();
        try
        {
            await dashboard.Task.WaitAsync(TimeSpan.FromSeconds(90));
            await healthy.Task.WaitAsync(TimeSpan.FromSeconds(150));
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException)
        {
            throw new InvalidOperationException($"The AppHost did not become healthy: {ex.Message}\n{RecentOutput}", ex);
        }

        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Environment.GetEnvironmentVariable("PLATFORM_CHROMIUM") ?? "/usr/bin/chromium",
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
        });
    }

    /// <summary>A fresh browser context already logged in through the printed Login URL.</summary>
    public async Task<IPage> LoggedInPageAsync()
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1400, Height = 900 } });
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(30_000);
        await page.GotoAsync(LoginUrl);
        return page;
    }

    /// <summary>An API client with the bearer token.</summary>
    public HttpClient Api()
    {
        var client = new HttpClient { BaseAddress = new Uri(DashboardUrl) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        return client;
    }

    /// <summary>The first endpoint of a resource, as <c>/api/resources</c> lists it.</summary>
    public async Task<Uri> EndpointAsync(string resource, CancellationToken cancellationToken)
    {
        using var api = Api();
        var resources = await api.GetFromJsonAsync<JsonElement>("/api/resources", cancellationToken);
        return new Uri(resources.EnumerateArray().Single(r => r.GetProperty("name").GetString() == resource)
            .GetProperty("endpoints")[0].GetProperty("url").GetString()!);
    }

    public Task ScreenshotAsync(IPage page, string name) =>
        page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(ScreenshotDirectory, name + ".png"), FullPage = true });

    public async ValueTask DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.CloseAsync();
        }

        _playwright?.Dispose();
        if (_appHost is { HasExited: false })
        {
            _ = Kill(_appHost.Id, 15);
            try
            {
                await _appHost.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            }
            catch (TimeoutException)
            {
                _appHost.Kill(entireProcessTree: true);
            }
        }

        _appHost?.Dispose();
        try
        {
            if (_stateDirectory is not null)
            {
                Directory.Delete(_stateDirectory, recursive: true);
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    [DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);

    [GeneratedRegex(@"^Dashboard: (http://127\.0\.0\.1:\d+)")]
    private static partial Regex DashboardLine();

    [GeneratedRegex(@"^Login: (http://127\.0\.0\.1:\d+/login\?t=\S+)")]
    private static partial Regex LoginLine();
}
