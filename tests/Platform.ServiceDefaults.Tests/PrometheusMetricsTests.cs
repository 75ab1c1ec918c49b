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

    [Fact]
    public async Task AScrapeRightAfterAnotherSeesWhatChangedInBetween()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var host = await TestHost.StartAsync(app =>
        {
            var counter = app.Services.GetRequiredService<IMeterFactory>().Create("Platform.ScrapeTest")
                .CreateCounter<long>("platform.scrape_test.refusals");
            app.MapGet("/refuse", () =>
            {
                counter.Add(1);
                return Results.Ok();
            });
        }, cancellationToken: ct);
        using var client = host.CreateClient();
        (await client.GetAsync("/refuse", ct)).EnsureSuccessStatusCode();
        var before = await client.GetStringAsync("/metrics", ct);

        (await client.GetAsync("/refuse", ct)).EnsureSuccessStatusCode();
        var after = await client.GetStringAsync("/metrics", ct);

        // A cached scrape (the exporter's default keeps one for 300 ms) would still say 1.
        Assert.Matches("(?m)^platform_scrape_test_refusals_total(\\{[^}]*\\})? 1( |$)", before);
        Assert.Matches("(?m)^platform_scrape_test_refusals_total(\\{[^}]*\\})? 2( |$)", after);
    }
}
