using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;
using Platform.TestSupport;

[assembly: AssemblyFixture(typeof(Platform.Browser.Tests.DashboardFixture))]
// One platform for every test, and some tests stop or restart its resources: one test at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Platform.Browser.Tests;

/// <summary>
/// The platform as users run it (the AppHost's own process, the Aspire dashboard on a free port with a fixed browser token,
/// see <see cref="AppHostProcess"/>) and one headless Debian Chromium for the whole suite.
/// </summary>
public sealed class DashboardFixture : IAsyncLifetime
{
    /// <summary>How long a UI expectation may wait: the dashboard follows resources over a stream, on a loaded machine.</summary>
    public const float ExpectTimeout = 30_000;

    private IPlaywright? _playwright;

    /// <summary>The running platform.</summary>
    public AppHostProcess Platform { get; private set; } = null!;

    /// <summary>The shared headless browser.</summary>
    public IBrowser Browser { get; private set; } = null!;

    /// <summary>AdminApi with the admin key.</summary>
    public HttpClient Admin { get; private set; } = null!;

    /// <summary>InferenceApi's address.</summary>
    public Uri InferenceApi { get; private set; } = null!;

    /// <summary>The dashboard's address.</summary>
    public Uri DashboardUrl => Platform.DashboardUrl;

    /// <summary>Where screenshots of failed tests go: <c>$PLATFORM_ARTIFACTS_DIR/browser</c> (default <c>artifacts/browser</c>).</summary>
    public string ArtifactsDirectory { get; } = Path.Combine(
        Environment.GetEnvironmentVariable("PLATFORM_ARTIFACTS_DIR") is { Length: > 0 } artifacts ? artifacts : Path.Combine(AppHostProcess.RepositoryRoot, "artifacts"),
        "browser");

    public async ValueTask InitializeAsync()
    {
        Directory.CreateDirectory(ArtifactsDirectory);
        Platform = await AppHostProcess.StartAsync(AppHostLaunch.Executable, TestContext.Current.CancellationToken);
        await Platform.DescribeWhenHealthyAsync(cancellationToken: TestContext.Current.CancellationToken);
        Admin = new HttpClient { BaseAddress = await Platform.EndpointAsync("admin-api", cancellationToken: TestContext.Current.CancellationToken) };
        Admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Platform.AdminApiKey);
        InferenceApi = await Platform.EndpointAsync("inference-api", cancellationToken: TestContext.Current.CancellationToken);

        Assertions.SetDefaultExpectTimeout(ExpectTimeout);
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = "/usr/bin/chromium",
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        });
    }

    /// <summary>A page in a fresh browser context (no cookies), already logged in through the login URL unless told not to.</summary>
    public async Task<IPage> OpenAsync(bool loggedIn = true)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1600, Height = 1000 } });
        context.SetDefaultTimeout(ExpectTimeout);
        var page = await context.NewPageAsync();
        if (loggedIn)
        {
            await page.GotoAsync(Platform.LoginUrl.ToString());
            // The login URL sets the auth cookie and redirects to the resources page.
            await Assertions.Expect(page.Locator("tr.resource-row").First).ToBeVisibleAsync();
        }

        return page;
    }

    /// <summary>
    /// A client for the dashboard's telemetry API (<c>/api/telemetry/*</c>), authenticated with the API key the dashboard gives
    /// for the browser token.
    /// </summary>
    public async Task<HttpClient> TelemetryApiAsync(CancellationToken cancellationToken)
    {
        var client = new HttpClient { BaseAddress = DashboardUrl };
        using var exchanged = await client.PostAsJsonAsync("/api/telemetry/validateToken", new { token = Platform.BrowserToken }, cancellationToken);
        var body = await exchanged.Content.ReadAsStringAsync(cancellationToken);
        Assert.True(exchanged.IsSuccessStatusCode, $"validateToken: {(int)exchanged.StatusCode} {body}");
        if (JsonDocument.Parse(body).RootElement.TryGetProperty("apiKey", out var key) && key.GetString() is { Length: > 0 } apiKey)
        {
            client.DefaultRequestHeaders.Add("x-api-key", apiKey);
        }

        return client;
    }

    public async ValueTask DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.CloseAsync();
        }

        _playwright?.Dispose();
        Admin?.Dispose();
        if (Platform is not null)
        {
            await Platform.DisposeAsync();
        }
    }
}
