using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Platform.ServiceDefaults.Tests;

public sealed class PrometheusMetricsTests
{
    [Fact]
    public async Task MetricsEndpointExposesCountersHistogramsAndGaugesInTextFormat()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var host = await TestHost.StartAsync(app =>
        {
            var meter = app.Services.GetRequiredService<IMeterFactory>().Create("Platform.ScrapeTest");
            var counter = meter.CreateCounter<long>("platform.scrape_test.requests", description: "Requests seen");
            var histogram = meter.CreateHistogram<double>("platform.scrape_test.latency", unit: "ms");
            meter.CreateObservableGauge("platform.scrape_test.queue_depth", () => 7);
            app.MapGet("/work", () =>
            {
                counter.Add(3, new KeyValuePair<string, object?>("model", "mlp"));
                histogram.Record(12.5, new KeyValuePair<string, object?>("model", "mlp"));
                return Results.Ok();
            });
        }, cancellationToken: ct);
        using var client = host.CreateClient();
        (await client.GetAsync("/work", ct)).EnsureSuccessStatusCode();
        (await client.GetAsync("/work", ct)).EnsureSuccessStatusCode();

        using var response = await client.GetAsync("/metrics", ct);
        var text = await response.Content.ReadAsStringAsync(ct);

        // OpenTelemetry's Prometheus exporter adds otel_scope_* labels; the series are matched on their own labels.
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("# TYPE platform_scrape_test_requests_total counter", text, StringComparison.Ordinal);
        Assert.Matches("(?m)^platform_scrape_test_requests_total\\{[^}]*model=\"mlp\"[^}]*\\} 6( |$)", text);
        Assert.Contains("# TYPE platform_scrape_test_latency_milliseconds histogram", text, StringComparison.Ordinal);
        Assert.Matches("(?m)^platform_scrape_test_latency_milliseconds_count\\{[^}]*model=\"mlp\"[^}]*\\} 2( |$)", text);
        Assert.Matches("(?m)^platform_scrape_test_latency_milliseconds_sum\\{[^}]*model=\"mlp\"[^}]*\\} 25( |$)", text);
        Assert.Matches("(?m)^platform_scrape_test_latency_milliseconds_bucket\\{[^}]*le=\"\\+Inf\"[^}]*\\} 2( |$)", text);
        Assert.Matches("(?m)^platform_scrape_test_queue_depth(\\{[^}]*\\})? 7( |$)", text);
        // ASP.NET Core's own request metrics come through the same reader.
        Assert.Contains("http_server_request_duration_seconds_bucket", text, StringComparison.Ordinal);
    }
}
