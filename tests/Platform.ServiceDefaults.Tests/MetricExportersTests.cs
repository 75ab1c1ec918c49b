using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Platform.ServiceDefaults;

namespace Platform.ServiceDefaults.Tests;

public sealed class MetricExportersTests
{
    [Theory]
    [InlineData(null, true, true)]
    [InlineData("prometheus", false, true)]
    [InlineData("otlp", true, false)]
    [InlineData("none", false, false)]
    public async Task MetricsExporter_DecidesWhereMetricsGo_TracesGoOutEitherWay(string? exporters, bool overOtlp, bool scraped)
    {
        var ct = TestContext.Current.CancellationToken;
        var received = new ConcurrentQueue<string>();
        await using var collector = await TestHost.StartCollectorAsync(received, ct);
        var service = await TestHost.StartAsync(
            app => app.MapGet("/metered", () => "x"),
            new Dictionary<string, string?>
            {
                ["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.Address.ToString().TrimEnd('/'),
                ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
                [MetricExporters.Key] = exporters,
                // The stop's flush is what sends both signals here; a loaded CI machine's first export may outlast 2 s.
                ["Telemetry:ShutdownFlushTimeout"] = "00:00:30",
            },
            cancellationToken: ct);
        using (var client = service.CreateClient())
        {
            await client.GetStringAsync("/metered", ct);
            using var scrape = await client.GetAsync("/metrics", ct);
            Assert.Equal(scraped ? HttpStatusCode.OK : HttpStatusCode.NotFound, scrape.StatusCode);
            if (scraped)
            {
                Assert.Contains("http_server_request_duration_seconds_bucket", await scrape.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
            }
        }

        // Stopping flushes every provider: the metrics go out now if OTLP has them, the request's span in every case.
        await service.DisposeAsync();
        Assert.Contains("/v1/traces", received);
        Assert.Equal(overOtlp, received.Contains("/v1/metrics"));
    }

    [Theory]
    [InlineData(" OTLP , prometheus ", true, true)]
    [InlineData("prometheus,prometheus", false, true)]
    [InlineData("", true, true)]
    public void FromConfiguration_ReadsACommaSeparatedListInAnyCase(string value, bool otlp, bool prometheus) =>
        Assert.Equal(new MetricExporters(otlp, prometheus), MetricExporters.FromConfiguration(Configuration(value)));

    [Theory]
    [InlineData("console", "OTEL_METRICS_EXPORTER: 'console' is not an exporter this service offers (otlp, prometheus or none, comma-separated)")]
    [InlineData("none,otlp", "OTEL_METRICS_EXPORTER: 'none' cannot be combined with another exporter ('none,otlp')")]
    public async Task MetricsExporter_ThatCannotBeHonoured_FailsTheStartNamingTheVariable(string value, string message)
    {
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => TestHost.StartAsync(
            _ => { }, new Dictionary<string, string?> { [MetricExporters.Key] = value }, cancellationToken: TestContext.Current.CancellationToken));
        Assert.Equal(message, refused.Message);
    }

    private static IConfiguration Configuration(string value) =>
        new ConfigurationBuilder().AddInMemoryCollection([new(MetricExporters.Key, value)]).Build();
}
