using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using OpenTelemetry.Trace;
using Platform.Redis;
using StackExchange.Redis;

namespace Platform.Libs.Tests;

public sealed class RedisTests(ServersFixture servers)
{
    private static IHost Build(string connectionString, Action<HostApplicationBuilder>? configure = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, EnvironmentName = "Testing" });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["ConnectionStrings:redis"] = connectionString });
        builder.Services.AddLogging();
        builder.AddPlatformRedisClient();
        configure?.Invoke(builder);
        return builder.Build();
    }

    [Fact]
    public async Task MemoryMonitor_ExportsUsedMemoryAndTheBound()
    {
        var ct = TestContext.Current.CancellationToken;
        using var host = Build(servers.RedisConnectionString, builder =>
        {
            builder.Services.AddMetrics();
            builder.AddPlatformRedisMemoryMonitor();
        });
        var monitor = host.Services.GetRequiredService<RedisMemoryMonitor>();
        var measured = new Dictionary<string, long>();
        using var listener = new System.Diagnostics.Metrics.MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == RedisMemoryMonitor.MeterName)
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) => measured[instrument.Name] = value);
        listener.Start();
        await using var admin = await ConnectionMultiplexer.ConnectAsync(servers.RedisConnectionString + ",allowAdmin=true");
        var server = admin.GetServers().Single();
        var before = (await server.ConfigGetAsync("maxmemory")).Single().Value;
        try
        {
            // The fixture's server runs unbounded: only the use is exported.
            await server.ConfigSetAsync("maxmemory", "0");
            await monitor.RefreshAsync(ct);
            listener.RecordObservableInstruments();
            Assert.True(measured["platform.redis.memory.used"] > 0);
            Assert.False(measured.ContainsKey("platform.redis.memory.limit"));
            Assert.Null(monitor.Last!.Value.Limit);

            await server.ConfigSetAsync("maxmemory", "300mb");
            await monitor.RefreshAsync(ct);
            measured.Clear();
            listener.RecordObservableInstruments();
            Assert.Equal(300L * 1024 * 1024, measured["platform.redis.memory.limit"]);
            Assert.InRange(measured["platform.redis.memory.used"], 1, 300L * 1024 * 1024);
        }
        finally
        {
            await server.ConfigSetAsync("maxmemory", before);
        }
    }

    [Fact]
    public async Task WorkerHeartbeat_IsWrittenWhileRedisIsFull()
    {
        await using var admin = await ConnectionMultiplexer.ConnectAsync(servers.RedisConnectionString + ",allowAdmin=true");
        var server = admin.GetServers().Single();
        var db = admin.GetDatabase();
        var prefix = $"test-workers-{Guid.NewGuid():N}";
        var maxMemory = (await server.ConfigGetAsync("maxmemory")).Single().Value;
        var policy = (await server.ConfigGetAsync("maxmemory-policy")).Single().Value;
        try
        {
            // Full as the published Redis gets: no eviction, and more data than its bound.
            await server.ConfigSetAsync("maxmemory-policy", "noeviction");
            await server.ConfigSetAsync("maxmemory", "1");
            var refused = await Assert.ThrowsAsync<RedisServerException>(() => db.StringSetAsync($"{prefix}:plain", "x"));
            Assert.StartsWith("OOM", refused.Message, StringComparison.Ordinal);

            await Platform.WorkerDiscovery.WorkerAnnouncer.BeatAsync(db, new Platform.WorkerDiscovery.WorkerDiscoveryOptions { KeyPrefix = prefix }, "worker-a", "{\"id\":\"worker-a\"}", DateTimeOffset.FromUnixTimeMilliseconds(1_234_567));

            Assert.Equal("{\"id\":\"worker-a\"}", (string?)await db.HashGetAsync($"{prefix}:endpoints", "worker-a"));
            Assert.Equal(1_234_567, await db.SortedSetScoreAsync($"{prefix}:heartbeats", "worker-a"));
        }
        finally
        {
            await server.ConfigSetAsync("maxmemory", maxMemory);
            await server.ConfigSetAsync("maxmemory-policy", policy);
            await db.KeyDeleteAsync([$"{prefix}:endpoints", $"{prefix}:heartbeats"]);
        }
    }

    [Fact]
    public async Task Ping_RoundTrips_AndHealthCheckIsHealthy()
    {
        var ct = TestContext.Current.CancellationToken;
        using var host = Build(servers.RedisConnectionString);
        var redis = host.Services.GetRequiredService<IConnectionMultiplexer>();

        var latency = await redis.GetDatabase().PingAsync();
        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(ct);

        Assert.True(latency >= TimeSpan.Zero);
        _ = ct;
        Assert.True(redis.IsConnected);
        Assert.Equal(HealthStatus.Healthy, report.Entries[RedisServiceCollectionExtensions.HealthCheckName].Status);
    }

    [Fact]
    public async Task Database_StoresAndReadsValues()
    {
        var ct = TestContext.Current.CancellationToken;
        using var host = Build(servers.RedisConnectionString);
        var db = host.Services.GetRequiredService<IConnectionMultiplexer>().GetDatabase();
        var key = "test:" + Guid.NewGuid().ToString("N");

        Assert.True(await db.StringSetAsync(key, "value", TimeSpan.FromMinutes(1)));
        Assert.Equal("value", (string?)await db.StringGetAsync(key));
    }

    [Fact]
    public async Task WithoutRedisCommandsFailAtOnceInsteadOfWaitingInABacklog()
    {
        // Enforcement answers 503 while Redis is away: a command must not sit in a backlog for the 5 s timeout first.
        using var host = Build("127.0.0.1:1,connectTimeout=500");
        var db = host.Services.GetRequiredService<IConnectionMultiplexer>().GetDatabase();
        var started = TimeProvider.System.GetTimestamp();

        await Assert.ThrowsAsync<RedisConnectionException>(() => db.StringGetAsync("any"));

        Assert.True(TimeProvider.System.GetElapsedTime(started) < TimeSpan.FromSeconds(2));
    }

    // Aspire's Redis tracing profiles every command and holds the spans that issued them until a drain every 10 s; it
    // must stay off (Platform's request paths open RedisSpans instead).
    [Fact]
    public async Task TracingListensToPlatformsRedisSpansNotToAspiresProfiler()
    {
        var ct = TestContext.Current.CancellationToken;
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, EnvironmentName = "Testing" });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["ConnectionStrings:redis"] = servers.RedisConnectionString });
        builder.Services.AddLogging();
        builder.AddPlatformRedisClient();
        builder.Services.AddOpenTelemetry().WithTracing(tracing => tracing.AddSource(RedisSpans.SourceName));
        using var host = builder.Build();
        await host.StartAsync(ct);

        using var aspires = new ActivitySource("OpenTelemetry.Instrumentation.StackExchangeRedis");
        using var platforms = new ActivitySource(RedisSpans.SourceName);

        Assert.True(platforms.HasListeners());
        Assert.False(aspires.HasListeners());
        await host.StopAsync(ct);
    }

    [Fact]
    public async Task AFailedCallsSpanSaysItFailedAndTheErrorReachesTheCaller()
    {
        var stopped = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == RedisSpans.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                lock (stopped)
                {
                    stopped.Add(activity);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        var purpose = "test." + Guid.NewGuid().ToString("N");

        var error = await Assert.ThrowsAsync<RedisException>(() => RedisSpans.TraceAsync<RedisValue>("GET", purpose, 1, () => throw new RedisException("away")));

        Activity span;
        lock (stopped)
        {
            span = Assert.Single(stopped, s => (string?)s.GetTagItem("platform.redis.purpose") == purpose);
        }

        Assert.Equal("away", error.Message);
        Assert.Equal(ActivityStatusCode.Error, span.Status);
        Assert.Equal(typeof(RedisException).FullName, span.GetTagItem("error.type"));
        Assert.Equal("GET", span.GetTagItem("db.operation.name"));
    }

    [Fact]
    public async Task WrongPassword_IsUnhealthy_NotAStartupCrash()
    {
        var ct = TestContext.Current.CancellationToken;
        var badPassword = servers.RedisConnectionString.Replace(ServersFixture.RedisPassword, "wrong", StringComparison.Ordinal) + ",connectTimeout=1000";
        using var host = Build(badPassword);

        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(ct);

        Assert.Equal(HealthStatus.Unhealthy, report.Entries[RedisServiceCollectionExtensions.HealthCheckName].Status);
        Assert.False(host.Services.GetRequiredService<IConnectionMultiplexer>().IsConnected);
    }
}
