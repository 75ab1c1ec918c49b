using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace Platform.ServiceDefaults.Tests;

public sealed class HealthEndpointTests
{
    [Fact]
    public async Task Health_ListsEveryCheck_AndIsUnhealthyWhenADependencyIs()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var host = await TestHost.StartAsync(
            _ => { },
            configureBuilder: b => b.Services.AddHealthChecks()
                .AddCheck("postgres", () => HealthCheckResult.Unhealthy("connection refused"))
                .AddCheck("redis", () => HealthCheckResult.Healthy("PING 1 ms")),
            cancellationToken: ct);
        using var client = host.CreateClient();

        using var response = await client.GetAsync("/health", ct);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("application/json; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        Assert.Equal("Unhealthy", body.RootElement.GetProperty("status").GetString());
        var checks = body.RootElement.GetProperty("checks").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!);
        Assert.Equal(["postgres", "redis", "self", "shutdown"], checks.Keys.Order());
        Assert.Equal("Unhealthy", checks["postgres"].GetProperty("status").GetString());
        Assert.Equal("connection refused", checks["postgres"].GetProperty("description").GetString());
        Assert.Equal("Healthy", checks["redis"].GetProperty("status").GetString());
        Assert.True(checks["redis"].GetProperty("durationMs").GetDouble() >= 0);
        Assert.Equal(["live"], checks["self"].GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
    }

    [Fact]
    public async Task Alive_OnlyRunsLiveChecks()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var host = await TestHost.StartAsync(
            _ => { },
            configureBuilder: b => b.Services.AddHealthChecks().AddCheck("postgres", () => HealthCheckResult.Unhealthy("down")),
            cancellationToken: ct);
        using var client = host.CreateClient();

        using var response = await client.GetAsync("/alive", ct);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Healthy", body.RootElement.GetProperty("status").GetString());
        Assert.Equal(["self"], body.RootElement.GetProperty("checks").EnumerateArray().Select(c => c.GetProperty("name").GetString()));
    }

    [Fact]
    public async Task ServiceInfo_AnswersNameAndVersion()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var host = await TestHost.StartAsync(app => app.MapServiceInfo("admin-api"), cancellationToken: ct);
        using var client = host.CreateClient();

        using var body = JsonDocument.Parse(await client.GetStringAsync("/", ct));

        Assert.Equal("admin-api", body.RootElement.GetProperty("service").GetString());
        Assert.False(string.IsNullOrEmpty(body.RootElement.GetProperty("version").GetString()));
    }
}
