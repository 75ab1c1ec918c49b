using System.Text.RegularExpressions;
using Microsoft.Playwright;

namespace Platform.Browser.Tests;

/// <summary>
/// Base of the dashboard tests: pages opened through <see cref="OpenAsync"/> are closed after the test, and when the test failed
/// each is first saved (screenshot and HTML) into <see cref="DashboardFixture.ArtifactsDirectory"/>.
/// </summary>
public abstract partial class DashboardTest(DashboardFixture dashboard) : IAsyncDisposable
{
    private readonly List<IPage> _pages = [];

    protected DashboardFixture Dashboard { get; } = dashboard;

    protected static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A page in a fresh browser context, logged in unless told not to.</summary>
    protected async Task<IPage> OpenAsync(bool loggedIn = true)
    {
        var page = await Dashboard.OpenAsync(loggedIn);
        _pages.Add(page);
        return page;
    }

    /// <summary>The resources view's row of the resource (or replica) named exactly <paramref name="name"/>.</summary>
    protected static ILocator ResourceRow(IPage page, string name) => ResourceRows(page, new Regex($"^{Regex.Escape(name)}$"));

    /// <summary>The resources view's rows whose resource name matches <paramref name="name"/>.</summary>
    protected static ILocator ResourceRows(IPage page, Regex name) =>
        page.Locator("tr.resource-row").Filter(new() { Has = page.Locator("span.resource-name-text", new() { HasTextRegex = name }) });

    /// <summary>
    /// The text of a row's state cell. The dashboard writes "Running" only for a resource that is Running and Healthy; a
    /// running one that is not healthy reads "Running (Unhealthy)".
    /// </summary>
    protected static ILocator State(ILocator row) => row.Locator(".state-column-cell > span").First;

    public async ValueTask DisposeAsync()
    {
        if (TestContext.Current.TestState?.Result is TestResult.Failed)
        {
            var name = InvalidFileCharacters().Replace(TestContext.Current.Test?.TestDisplayName ?? GetType().Name, "_");
            for (var i = 0; i < _pages.Count; i++)
            {
                var file = Path.Combine(Dashboard.ArtifactsDirectory, $"{name}-{i}");
                try
                {
                    await _pages[i].ScreenshotAsync(new PageScreenshotOptions { Path = file + ".png", FullPage = true });
                    await File.WriteAllTextAsync(file + ".html", await _pages[i].ContentAsync());
                    TestContext.Current.TestOutputHelper?.WriteLine($"saved {file}.png ({_pages[i].Url})");
                }
                catch (PlaywrightException ex)
                {
                    TestContext.Current.TestOutputHelper?.WriteLine($"could not save {file}: {ex.Message}");
                }
            }
        }

        foreach (var page in _pages)
        {
            await page.Context.CloseAsync();
        }

        GC.SuppressFinalize(this);
    }

    [GeneratedRegex(@"[^A-Za-z0-9._-]+")]
    private static partial Regex InvalidFileCharacters();
}
