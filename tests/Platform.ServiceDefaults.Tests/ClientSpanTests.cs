using System.Collections.Concurrent;
using System.Diagnostics;
using Aspire.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using OpenTelemetry;
using OpenTelemetry.Trace;
using Platform.Hosting;
using Platform.TestSupport;
using StackExchange.Redis;

[assembly: AssemblyFixture(typeof(Platform.ServiceDefaults.Tests.ServersFixture))]

namespace Platform.ServiceDefaults.Tests;

/// <summary>Real Postgres and Redis (Platform's native resources under Aspire) for the client-span tests.</summary>
public sealed class ServersFixture : IAsyncLifetime
{
    private PlatformApp? _app;

    public string Postgres { get; private set; } = "";

    public string Redis { get; private set; } = "";

    public async ValueTask InitializeAsync()
    {
        _app = await PlatformApp.StartModelAsync(builder =>
        {
            builder.AddNativePostgres("postgres", builder.AddParameter("postgres-password", Guid.NewGuid().ToString("N"), secret: true).Resource).AddDatabase("db");
            builder.AddNativeRedis("redis", builder.AddParameter("redis-password", Guid.NewGuid().ToString("N"), secret: true).Resource);
        });
        Postgres = await _app.GetConnectionStringAsync("db");
        Redis = await _app.GetConnectionStringAsync("redis");
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.DisposeAsync();
        }
    }
}

/// <summary>
/// One request through two services built with the service defaults: the server span, its Npgsql, Redis and HTTP client
/// children (the Aspire client integrations' instrumentation), and the second service's server span under that client span.
/// </summary>
public sealed class ClientSpanTests(ServersFixture servers)
{
    [Fact]
    public async Task ARequestsSpansNestAcrossDatabaseCacheAndServiceCalls()
    {
        var ct = TestContext.Current.CancellationToken;
        var spans = new ConcurrentQueue<Activity>();
        var export = SpanQueue.ExportTo(spans);

        await using var downstream = await TestHost.StartAsync(app => app.MapGet("/downstream", () => "down"), configureBuilder: export, cancellationToken: ct);
        await using var upstream = await TestHost.StartAsync(
            app => app.MapGet("/upstream", async (NpgsqlDataSource db, IConnectionMultiplexer redis, IHttpClientFactory http) =>
            {
                await using var command = db.CreateCommand("SELECT 41 + 1");
                var answer = await command.ExecuteScalarAsync();
                await redis.GetDatabase().StringSetAsync("client-span-test", answer!.ToString());
                var down = await http.CreateClient().GetStringAsync("http://downstream/downstream");
                return $"{answer} {down}";
            }),
            new Dictionary<string, string?>
            {
                ["ConnectionStrings:db"] = servers.Postgres,
                ["ConnectionStrings:redis"] = servers.Redis,
                ["services:downstream:http:0"] = downstream.Address.ToString(),
            },
            b =>
            {
                b.AddNpgsqlDataSource("db");
                b.AddRedisClient("redis");
                export(b);
            },
            cancellationToken: ct);
        using var client = upstream.CreateClient();

        Assert.Equal("42 down", await client.GetStringAsync("/upstream", ct));
        upstream.Services.GetRequiredService<TracerProvider>().ForceFlush();
        downstream.Services.GetRequiredService<TracerProvider>().ForceFlush();

        List<Activity> Snapshot() => [.. spans.DistinctBy(s => s.SpanId)];

        // StackExchange.Redis' instrumentation drains its profiler on a timer (10 s by default): its span comes last.
        List<Activity> all = [];
        await Waits.UntilAsync(() => (all = Snapshot()).Any(s => s.Kind == ActivityKind.Server && s.DisplayName == "GET /downstream") && all.Any(IsRedis),
            TimeSpan.FromSeconds(30), "the downstream server span and a Redis span", ct);

        var root = all.Single(s => s.Kind == ActivityKind.Server && s.DisplayName == "GET /upstream");
        var children = all.Where(s => s.ParentSpanId == root.SpanId).ToList();
        var describe = string.Join("\n", all.Select(s => $"{s.Kind} {s.DisplayName} {s.Source.Name} parent={s.ParentSpanId}"));
        Assert.True(children.Any(s => s.Kind == ActivityKind.Client && s.Source.Name == "Npgsql"), describe);
        Assert.True(children.Any(IsRedis), describe);
        var httpClient = Assert.Single(children, s => s.Kind == ActivityKind.Client && s.Source.Name == "System.Net.Http");
        var downstreamServer = all.Single(s => s.Kind == ActivityKind.Server && s.DisplayName == "GET /downstream");
        Assert.Equal(root.TraceId, downstreamServer.TraceId);
        Assert.Equal(httpClient.SpanId, downstreamServer.ParentSpanId);
    }

    [Fact]
    public async Task CallsOutsideAnyOperationStartNoTrace()
    {
        var ct = TestContext.Current.CancellationToken;
        var spans = new ConcurrentQueue<Activity>();
        await using var host = await TestHost.StartAsync(
            app => app.MapGet("/touch", async (IConnectionMultiplexer redis) => await redis.GetDatabase().StringSetAsync("in-request", "1")),
            new Dictionary<string, string?>
            {
                ["ConnectionStrings:db"] = servers.Postgres,
                ["ConnectionStrings:redis"] = servers.Redis,
            },
            b =>
            {
                b.AddNpgsqlDataSource("db");
                b.AddRedisClient("redis");
                SpanQueue.ExportTo(spans)(b);
            },
            cancellationToken: ct);

        // What a background loop does: a query and a Redis command with no request (no current activity) around them.
        Assert.Null(Activity.Current);
        await using (var command = host.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand("SELECT 1"))
        {
            await command.ExecuteScalarAsync(ct);
        }

        await host.Services.GetRequiredService<IConnectionMultiplexer>().GetDatabase().StringSetAsync("outside-request", "1");
        using var client = host.CreateClient();
        await client.GetStringAsync("/touch", ct);

        // Redis spans are drained from the profiler on a timer: once the request's has arrived, the background one would have too.
        var tracer = host.Services.GetRequiredService<TracerProvider>();
        List<Activity> all = [];
        await Waits.UntilAsync(() =>
        {
            tracer.ForceFlush();
            all = [.. spans.DistinctBy(s => s.SpanId)];

            return all.Any(s => IsRedis(s) && s.ParentSpanId != default);
        }, TimeSpan.FromSeconds(30), "the request's Redis span", ct);

        var describe = string.Join("\n", all.Select(s => $"{s.Kind} {s.DisplayName} {s.Source.Name} parent={s.ParentSpanId}"));
        Assert.True(all.Any(s => IsRedis(s) && s.ParentSpanId != default), describe);
        Assert.DoesNotContain(all, s => s.Kind == ActivityKind.Client && s.ParentSpanId == default);
    }

    private static bool IsRedis(Activity span) => span.Source.Name.Contains("Redis", StringComparison.OrdinalIgnoreCase);
}
