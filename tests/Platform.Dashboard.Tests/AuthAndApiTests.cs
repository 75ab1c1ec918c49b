using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Platform.Dashboard.Tests;

public sealed class AuthAndApiTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("/api/resources")]
    [InlineData("/api/traces")]
    [InlineData("/api/logs")]
    [InlineData("/api/metrics")]
    [InlineData("/api/resources/api/logs")]
    public async Task ApiNeedsATokenOrSession(string path)
    {
        await using var host = await DashboardHost.StartAsync();
        using var anonymous = host.Client(authenticated: false);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync(path, Ct)).StatusCode);

        using var wrong = host.Client(authenticated: false);
        wrong.DefaultRequestHeaders.Authorization = new("Bearer", "not-the-token");
        Assert.Equal(HttpStatusCode.Unauthorized, (await wrong.GetAsync(path, Ct)).StatusCode);

        using var bearer = host.Client();
        Assert.Equal(HttpStatusCode.OK, (await bearer.GetAsync(path, Ct)).StatusCode);
    }

    [Fact]
    public async Task PagesRedirectToLoginAndTheTokenLinkSetsASessionCookie()
    {
        await using var host = await DashboardHost.StartAsync();
        var cookies = new CookieContainer();
        using var browser = new HttpClient(new HttpClientHandler { CookieContainer = cookies, AllowAutoRedirect = false }) { BaseAddress = new Uri(host.Url) };

        var page = await browser.GetAsync("/traces?resource=api", Ct);
        Assert.Equal(HttpStatusCode.Redirect, page.StatusCode);
        Assert.StartsWith("/login?returnUrl=", page.Headers.Location!.OriginalString, StringComparison.Ordinal);

        var bad = await browser.GetAsync("/login?t=wrong", Ct);
        Assert.Equal(HttpStatusCode.Unauthorized, bad.StatusCode);
        Assert.Empty(cookies.GetCookies(new Uri(host.Url)));

        var login = await browser.GetAsync($"/login?t={DashboardHost.Token}&returnUrl=%2Ftraces", Ct);
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        Assert.Equal("/traces", login.Headers.Location!.OriginalString);
        var cookie = Assert.Single(cookies.GetCookies(new Uri(host.Url)));
        Assert.True(cookie.HttpOnly);

        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync("/", Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync("/api/resources", Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync("/_static/app.js", Ct)).StatusCode);

        // An external return URL is not followed (no open redirect).
        var external = await browser.GetAsync($"/login?t={DashboardHost.Token}&returnUrl=%2F%2Fevil.example", Ct);
        Assert.Equal("/", external.Headers.Location!.OriginalString);

        await browser.GetAsync("/logout", Ct);
        Assert.Equal(HttpStatusCode.Unauthorized, (await browser.GetAsync("/api/resources", Ct)).StatusCode);
    }

    [Fact]
    public async Task StaticAssetsNeedASessionToo()
    {
        await using var host = await DashboardHost.StartAsync();
        using var anonymous = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = new Uri(host.Url) };
        Assert.Equal(HttpStatusCode.Redirect, (await anonymous.GetAsync("/_static/app.js", Ct)).StatusCode);
    }

    [Fact]
    public async Task ResourcesKeepTheirShapeAndAddReplicaDetails()
    {
        await using var host = await DashboardHost.StartAsync();
        using var client = host.Client();
        var resources = await client.GetFromJsonAsync<JsonElement>("/api/resources", Ct);
        var worker = resources.EnumerateArray().Single(r => r.GetProperty("name").GetString() == "worker");
        foreach (var property in new[] { "name", "type", "state", "health", "endpoints", "replicas", "pids", "startedAt", "exitCode", "message" })
        {
            Assert.True(worker.TryGetProperty(property, out _), property);
        }

        Assert.Equal("Healthy", worker.GetProperty("health").GetString());
        Assert.Equal(2, worker.GetProperty("replicas").GetInt32());
        Assert.Equal([1235, 1236], worker.GetProperty("pids").EnumerateArray().Select(p => p.GetInt32()));
        Assert.Equal(1, worker.GetProperty("restarts").GetInt32());
        Assert.Equal("worker-1", worker.GetProperty("instances")[1].GetProperty("instanceId").GetString());

        var details = await client.GetFromJsonAsync<JsonElement>("/api/resources/worker", Ct);
        var secret = details.GetProperty("environment").EnumerateArray().Single(e => e.GetProperty("isSecret").GetBoolean());
        Assert.Equal("****", secret.GetProperty("value").GetString());
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync("/api/resources/nope", Ct)).StatusCode);
    }

    [Fact]
    public async Task ActionsReachTheOrchestrator()
    {
        await using var host = await DashboardHost.StartAsync();
        using var client = host.Client();
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/api/resources/worker/restart?instance=worker-1", null, Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/api/resources/api/stop", null, Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync("/api/resources/api/start", null, Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await client.PostAsync("/api/resources/api/explode", null, Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.PostAsync("/api/resources/nope/stop", null, Ct)).StatusCode);
        var missing = await client.PostAsync("/api/resources/worker/stop?instance=missing", null, Ct);
        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
        Assert.Contains("missing", await missing.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);

        using var anonymous = host.Client(authenticated: false);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsync("/api/resources/api/stop", null, Ct)).StatusCode);
        Assert.Equal(
            [("restart", "worker", "worker-1"), ("stop", "api", null), ("start", "api", null), ("stop", "worker", "missing")],
            host.Actions.Calls);
    }

    [Fact]
    public async Task ConsoleLogsCanBeReadFilteredAndFollowed()
    {
        await using var host = await DashboardHost.StartAsync();
        host.Logs.Write("api", "api-0", "Now listening on: http://127.0.0.1:5000", false);
        host.Logs.Write("api", "api-0", "warn: something odd", true);
        using var client = host.Client();

        var all = await client.GetFromJsonAsync<JsonElement>("/api/resources/api/logs", Ct);
        Assert.Equal(2, all.GetArrayLength());
        var filtered = await client.GetFromJsonAsync<JsonElement>("/api/resources/api/logs?filter=ODD", Ct);
        Assert.True(Assert.Single(filtered.EnumerateArray()).GetProperty("isError").GetBoolean());

        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/resources/api/logs/stream");
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Ct));
        var seen = new List<string>();
        _ = Task.Run(async () =>
        {
            await Task.Delay(300, Ct);
            host.Logs.Write("api", "api-0", "a line written after the stream opened", false);
        }, Ct);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        while (!seen.Any(l => l.Contains("after the stream opened", StringComparison.Ordinal)))
        {
            var line = await reader.ReadLineAsync(timeout.Token);
            if (line?.StartsWith("data: ", StringComparison.Ordinal) == true)
            {
                seen.Add(line);
            }
        }

        Assert.Equal(3, seen.Count);
        Assert.Contains("Now listening", seen[0], StringComparison.Ordinal);
    }
}
