using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Platform.Redis;

namespace Platform.Libs.Tests;

public sealed class RedisTests(ServersFixture servers)
{
    private static IHost Build(string connectionString)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, EnvironmentName = "Testing" });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["ConnectionStrings:redis"] = connectionString });
        builder.Services.AddLogging();
        builder.AddPlatformRedis();
        return builder.Build();
    }

    [Fact]
    public async Task Ping_RoundTrips_AndHealthCheckIsHealthy()
    {
        var ct = TestContext.Current.CancellationToken;
        using var host = Build(servers.RedisConnectionString);
        var redis = host.Services.GetRequiredService<IRedisConnection>();

        var latency = await redis.PingAsync(ct);
        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(ct);

        Assert.True(latency >= TimeSpan.Zero);
        Assert.True(redis.IsConnected);
        Assert.Equal(HealthStatus.Healthy, report.Entries["redis"].Status);
    }

    [Fact]
    public async Task Database_StoresAndReadsValues()
    {
        var ct = TestContext.Current.CancellationToken;
        using var host = Build(servers.RedisConnectionString);
        var db = await host.Services.GetRequiredService<IRedisConnection>().GetDatabaseAsync(ct);
        var key = "test:" + Guid.NewGuid().ToString("N");

        Assert.True(await db.StringSetAsync(key, "value", TimeSpan.FromMinutes(1)));
        Assert.Equal("value", (string?)await db.StringGetAsync(key));
    }

    [Fact]
    public async Task WrongPassword_IsUnhealthy_NotAStartupCrash()
    {
        var ct = TestContext.Current.CancellationToken;
        var badPassword = servers.RedisConnectionString.Replace(ServersFixture.RedisPassword, "wrong", StringComparison.Ordinal) + ",connectTimeout=1000";
        using var host = Build(badPassword);

        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(ct);

        Assert.Equal(HealthStatus.Unhealthy, report.Entries["redis"].Status);
        Assert.False(host.Services.GetRequiredService<IRedisConnection>().IsConnected);
    }
}
