using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Platform.ServiceDefaults.ServiceDiscovery;

namespace Platform.ServiceDefaults.Tests;

public sealed class ServiceDiscoveryTests
{
    private static IServiceEndpointResolver Resolver(Dictionary<string, string?> settings) =>
        new ConfigurationServiceEndpointResolver(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());

    [Fact]
    public async Task Resolve_RoundRobinsAcrossReplicas_AndKeepsPathAndQuery()
    {
        var resolver = Resolver(new()
        {
            ["services:admin-api:http:0"] = "http://127.0.0.1:5001",
            ["services:admin-api:http:1"] = "http://127.0.0.1:5002",
        });
        var ct = TestContext.Current.CancellationToken;

        var picks = new List<Uri>();
        for (var i = 0; i < 4; i++)
        {
            picks.Add(await resolver.ResolveAsync(new Uri("http://admin-api/models/7?x=1"), ct));
        }

        Assert.Equal(
            ["http://127.0.0.1:5001/models/7?x=1", "http://127.0.0.1:5002/models/7?x=1", "http://127.0.0.1:5001/models/7?x=1", "http://127.0.0.1:5002/models/7?x=1"],
            picks.Select(u => u.ToString()));
    }

    [Fact]
    public async Task Resolve_HttpsPlusHttp_PrefersHttpsAndFallsBackToHttp()
    {
        var ct = TestContext.Current.CancellationToken;
        var httpOnly = Resolver(new() { ["services:model-worker:http:0"] = "http://127.0.0.1:6001" });
        Assert.Equal("http://127.0.0.1:6001/infer", (await httpOnly.ResolveAsync(new Uri("https+http://model-worker/infer"), ct)).ToString());

        var both = Resolver(new()
        {
            ["services:model-worker:http:0"] = "http://127.0.0.1:6001",
            ["services:model-worker:https:0"] = "https://127.0.0.1:6443",
        });
        Assert.Equal("https://127.0.0.1:6443/infer", (await both.ResolveAsync(new Uri("https+http://model-worker/infer"), ct)).ToString());
    }

    [Fact]
    public async Task Resolve_UnknownService_ThrowsClearError()
    {
        var resolver = Resolver(new() { ["services:admin-api:http:0"] = "http://127.0.0.1:5001" });

        var ex = await Assert.ThrowsAsync<ServiceEndpointNotFoundException>(
            () => resolver.ResolveAsync(new Uri("http://context-enrichment/enrich"), TestContext.Current.CancellationToken).AsTask());

        Assert.Equal("context-enrichment", ex.ServiceName);
        Assert.Contains("services__context-enrichment__http__0", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://localhost:8080/x")]
    [InlineData("http://127.0.0.1:9/x")]
    [InlineData("https://api.example.com/v1/x")]
    public async Task Resolve_NonServiceHosts_PassThrough(string uri)
    {
        var resolver = Resolver([]);
        Assert.Equal(new Uri(uri), await resolver.ResolveAsync(new Uri(uri), TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task GetEndpoints_ReturnsEveryReplica()
    {
        var resolver = Resolver(new()
        {
            ["services:model-worker:http:1"] = "http://127.0.0.1:7002",
            ["services:model-worker:http:0"] = "http://127.0.0.1:7001",
            ["services:model-worker:http:2"] = "http://127.0.0.1:7003",
        });

        var endpoints = await resolver.GetEndpointsAsync("model-worker", TestContext.Current.CancellationToken);

        Assert.Equal([0, 1, 2], endpoints.Select(e => e.Index));
        Assert.Equal(7001, endpoints[0].Address.Port);
        Assert.All(endpoints, e => Assert.Equal("http", e.EndpointName));
        await Assert.ThrowsAsync<ServiceEndpointNotFoundException>(
            () => resolver.GetEndpointsAsync("nope", TestContext.Current.CancellationToken).AsTask());
    }

    [Fact]
    public async Task HttpClient_FromFactory_BalancesAcrossRealReplicas()
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
        var answers = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            answers.Add(await client.GetStringAsync("/who", ct));
        }

        Assert.Equal(["replica-0", "replica-1", "replica-0", "replica-1"], answers);
    }

    [Fact]
    public async Task HttpClient_UnknownService_FailsWithDiscoveryError_NotDns()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var caller = await TestHost.StartAsync(_ => { }, cancellationToken: ct);
        var client = caller.Services.GetRequiredService<IHttpClientFactory>().CreateClient();

        var ex = await Assert.ThrowsAsync<ServiceEndpointNotFoundException>(() => client.GetAsync("http://model-worker/infer", ct));
        Assert.Contains("services:model-worker:http:0", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Retry_MovesToTheNextReplica()
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
                ["HttpResilience:RetryBaseDelay"] = "00:00:00.001",
            },
            cancellationToken: ct);
        var client = caller.Services.GetRequiredService<IHttpClientFactory>().CreateClient();

        using var response = await client.GetAsync("http://admin-api/who", ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("up", await response.Content.ReadAsStringAsync(ct));
    }
}
