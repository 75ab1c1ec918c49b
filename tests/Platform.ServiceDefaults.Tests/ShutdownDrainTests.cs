using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Platform.TestSupport;

namespace Platform.ServiceDefaults.Tests;

public sealed class ShutdownDrainTests
{
    private static readonly TimeSpan Drain = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task Stop_KeepsServingThroughTheDrainWithReadinessDownAndConnectionsClosingThenStops()
    {
        var ct = TestContext.Current.CancellationToken;
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var host = await StartAsync(Drain, time, ct);
        using var client = host.CreateClient();
        using (var before = await client.GetAsync("/work", ct))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
            Assert.False(before.Headers.ConnectionClose ?? false);
        }

        var stopped = host.App.StopAsync(ct);
        await Waits.UntilAsync(
            async () =>
            {
                using var health = await client.GetAsync("/health", ct);
                return health.StatusCode == HttpStatusCode.ServiceUnavailable;
            },
            TimeSpan.FromSeconds(10), "readiness down once the host is stopping", ct);

        // Draining: readiness names why, liveness holds, requests are served and each response closes its connection.
        using (var health = await client.GetAsync("/health", ct))
        {
            using var body = JsonDocument.Parse(await health.Content.ReadAsStringAsync(ct));
            var shutdown = body.RootElement.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "shutdown");
            Assert.Equal("Unhealthy", shutdown.GetProperty("status").GetString());
            Assert.Equal("stopping: draining connections", shutdown.GetProperty("description").GetString());
        }

        using (var alive = await client.GetAsync("/alive", ct))
        {
            Assert.Equal(HttpStatusCode.OK, alive.StatusCode);
        }

        for (var i = 0; i < 3; i++)
        {
            using var during = await client.GetAsync("/work", ct);
            Assert.Equal(HttpStatusCode.OK, during.StatusCode);
            Assert.Equal("done", await during.Content.ReadAsStringAsync(ct));
            Assert.True(during.Headers.ConnectionClose, "a response during the drain closes its connection");
        }

        Assert.False(stopped.IsCompleted, "the host stopped before its drain ended");
        time.Advance(Drain);
        await stopped.WaitAsync(TimeSpan.FromSeconds(10), ct);

        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync("/work", ct));
        Assert.Equal(SocketError.ConnectionRefused, (refused.InnerException as SocketException)?.SocketErrorCode);
    }

    [Fact]
    public async Task Stop_WithoutADrainStopsAtOnce()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var host = await StartAsync(TimeSpan.Zero, new FakeTimeProvider(DateTimeOffset.UtcNow), ct);

        // No time passes on the fake clock: only a drain of zero lets the host stop.
        await host.App.StopAsync(ct).WaitAsync(TimeSpan.FromSeconds(10), ct);
    }

    /// <summary>A host serving <c>GET /work</c> with the given drain, its timers on <paramref name="time"/>.</summary>
    private static Task<TestHost> StartAsync(TimeSpan drain, FakeTimeProvider time, CancellationToken ct) =>
        TestHost.StartAsync(
            app => app.MapGet("/work", () => Results.Text("done")),
            configuration: new Dictionary<string, string?> { ["Shutdown:DrainDelay"] = drain.ToString() },
            configureBuilder: b => b.Services.AddSingleton<TimeProvider>(time),
            cancellationToken: ct);
}
