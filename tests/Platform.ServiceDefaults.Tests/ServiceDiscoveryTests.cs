using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Platform.ServiceDefaults.Tests;

/// <summary>Aspire's service discovery (Microsoft.Extensions.ServiceDiscovery) as the services use it: <c>http://&lt;name&gt;</c> from <c>services:&lt;name&gt;:&lt;endpoint&gt;:&lt;i&gt;</c>.</summary>
public sealed class ServiceDiscoveryTests
{
    [Fact]
    public async Task HttpClient_ReachesEveryConfiguredReplica()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var replica0 = await TestHost.StartAsync(app => app.MapGet("/who", () => "replica-0"), serviceDefaults: false, cancellationToken: ct);
        await using var replica1 = await TestHost.StartAsync(app => app.MapGet("/who", () => "replica-1"), serviceDefaults: false, cancellationToken: ct);
        await using var caller = await TestHost.StartAsync(
            _ => { },
            new Dictionary<string, string?>
            {
                ["services:admin-api:http:0"] = replica0.Address.ToString(),
                ["services:admin-api:http:1"] = replica1.Address.ToString(),
            },
            b => b.Services.AddHttpClient("admin", c => c.BaseAddress = new Uri("http://admin-api")),
            cancellationToken: ct);

        var client = caller.Services.GetRequiredService<IHttpClientFactory>().CreateClient("admin");
        var answers = new HashSet<string>();
        for (var i = 0; i < 8; i++)
        {
            answers.Add(await client.GetStringAsync("/who?x=1", ct));
        }

        Assert.Equal(["replica-0", "replica-1"], answers.Order());
    }

    [Fact]
    public async Task HttpsPlusHttp_FallsBackToHttp()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var service = await TestHost.StartAsync(app => app.MapGet("/infer", () => "plain"), serviceDefaults: false, cancellationToken: ct);
        await using var caller = await TestHost.StartAsync(
            _ => { },
            new Dictionary<string, string?> { ["services:context-enrichment:http:0"] = service.Address.ToString() },
            cancellationToken: ct);
        var client = caller.Services.GetRequiredService<IHttpClientFactory>().CreateClient();

        Assert.Equal("plain", await client.GetStringAsync("https+http://context-enrichment/infer", ct));
    }

    [Fact]
    public async Task UnknownService_FailsWithoutReachingTheNetwork()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var caller = await TestHost.StartAsync(_ => { }, cancellationToken: ct);
        var client = caller.Services.GetRequiredService<IHttpClientFactory>().CreateClient();

        var ex = await Assert.ThrowsAnyAsync<Exception>(() => client.GetAsync("http://model-worker/infer", ct));
        Assert.Contains("model-worker", ex.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ARetriedGetCanSucceedOnAnotherReplica()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var down = await TestHost.StartAsync(
            app => app.MapGet("/who", () => Results.StatusCode(StatusCodes.Status503ServiceUnavailable)), serviceDefaults: false, cancellationToken: ct);
        await using var up = await TestHost.StartAsync(app => app.MapGet("/who", () => "up"), serviceDefaults: false, cancellationToken: ct);
        await using var caller = await TestHost.StartAsync(
            _ => { },
            new Dictionary<string, string?>
            {
                ["services:admin-api:http:0"] = down.Address.ToString(),
                ["services:admin-api:http:1"] = up.Address.ToString(),
            },
            b => b.Services.ConfigureAll<Microsoft.Extensions.Http.Resilience.HttpStandardResilienceOptions>(o => o.Retry.Delay = TimeSpan.FromMilliseconds(1)),
            cancellationToken: ct);
        var client = caller.Services.GetRequiredService<IHttpClientFactory>().CreateClient();

        for (var i = 0; i < 4; i++)
        {
            using var response = await client.GetAsync("http://admin-api/who", ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("up", await response.Content.ReadAsStringAsync(ct));
        }
    }
}
