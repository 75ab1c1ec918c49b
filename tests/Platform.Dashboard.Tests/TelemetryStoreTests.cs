using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Platform.Hosting.Telemetry;

namespace Platform.Dashboard.Tests;

public sealed class TelemetryStoreTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly TelemetrySource Api = new("api", "api-0", [new("service.name", "api"), new("service.instance.id", "api-0")]);
    private static readonly TelemetrySource Worker = new("worker", "worker-0", [new("service.name", "worker"), new("service.instance.id", "worker-0")]);

    private static SpanRecord Span(TelemetrySource source, int trace, int span, int? parent = null, long start = 1_000_000) => new(
        source, "test", null, trace.ToString("x32"), span.ToString("x16"), parent?.ToString("x16"), null, $"span {span}", SpanKind.Server,
        start, start + 5_000_000, SpanStatus.Unset, null, [new("n", span.ToString(System.Globalization.CultureInfo.InvariantCulture), AttributeKind.Int)], [], []);

    private static LogRecordEntry Log(TelemetrySource source, int i) =>
        new(0, source, "cat", 1_000 + i, 9, null, $"message {i}", null, [], null, null);

    [Fact]
    public void SpansAndLogsAreBoundedPerResourceAndEvictionCleansTheTraceIndex()
    {
        var store = new TelemetryStore(Options.Create(new TelemetryStoreOptions { MaxSpansPerResource = 100, MaxLogsPerResource = 50 }));
        store.AddSpans(Enumerable.Range(1, 250).Select(i => Span(Api, i, i)).ToList());
        store.AddSpans([Span(Worker, 1, 1000, parent: 1)]);
        store.AddLogs(Enumerable.Range(1, 120).Select(i => Log(Api, i)).ToList());
        store.AddLogs([Log(Worker, 1)]);

        var resources = store.GetResources().ToDictionary(r => r.Resource);
        Assert.Equal(100, resources["api"].Spans);
        Assert.Equal(1, resources["worker"].Spans);
        Assert.Equal(50, resources["api"].Logs);
        Assert.Equal(1, resources["worker"].Logs);

        // api's spans of traces 1..150 are gone; trace 1 survives through worker's span only.
        Assert.Equal(101, store.GetTraces(new TraceQuery(Limit: 10_000)).Total);
        Assert.Null(store.GetTrace(2.ToString("x32")));
        var orphan = store.GetTrace(1.ToString("x32"))!;
        Assert.Equal("worker", Assert.Single(orphan.Spans).Span.Resource);
        Assert.Equal("message 120", store.GetLogs(new LogQuery(Resource: "api", Limit: 1)).Logs[0].Message);
    }

    [Fact]
    public void MetricSeriesAreBoundedInPointsAndCardinality()
    {
        var store = new TelemetryStore(Options.Create(new TelemetryStoreOptions { MaxPointsPerSeries = 10, MaxSeriesPerResource = 3 }));
        for (var i = 0; i < 25; i++)
        {
            var points = Enumerable.Range(0, 5).Select(s => ((IReadOnlyList<TelemetryAttribute>)[new TelemetryAttribute("tenant", $"t{s}")],
                new MetricPointRecord(0, 1_000_000_000L * (i + 1), i, 0, null), (IReadOnlyList<double>?)null)).ToList();
            var rejected = store.AddMetric(new MetricBatch(Api, "m", "cost", "", "{usd}", MetricKind.Sum, true, MetricTemporality.Cumulative, points));
            Assert.Equal(2, rejected);
        }

        var data = store.GetInstrument("api", "m", "cost")!;
        Assert.Equal(3, data.Series.Count);
        Assert.All(data.Series, s => Assert.Equal(10, s.Points.Count));
        Assert.Equal(15, data.Series[0].Points[0].Value);
    }

    [Fact]
    public void PercentilesInterpolateInsideTheBucket()
    {
        var delta = new MetricPointRecord(0, 1, 0, 100, [0, 50, 50, 0]);
        Assert.Equal(10, MetricCharts.Percentile([0, 10, 20], delta, 0.5)!.Value, 6);
        Assert.Equal(19, MetricCharts.Percentile([0, 10, 20], delta, 0.95)!.Value, 6);
        Assert.Null(MetricCharts.Percentile([0, 10, 20], delta with { BucketCounts = [0, 0, 0, 0], Count = 0 }, 0.5));
    }

    [Fact]
    public async Task PersistedTelemetrySurvivesARestart()
    {
        var directory = Directory.CreateTempSubdirectory("platform-telemetry-").FullName;
        try
        {
            var options = new TelemetryStoreOptions();
            var first = new TelemetryStore(Options.Create(options));
            first.AddSpans([Span(Api, 7, 1), Span(Worker, 7, 2, parent: 1, start: 2_000_000)]);
            first.AddLogs([Log(Api, 1) with { TraceId = 7.ToString("x32"), SeverityNumber = 17 }]);
            first.AddMetric(new MetricBatch(Api, "m", "latency", "d", "s", MetricKind.Histogram, false, MetricTemporality.Cumulative,
                [([], new MetricPointRecord(1, 2, 0.5, 4, [1, 2, 1]), [0.1, 0.2])]));
            await new TelemetryPersistence(first, new OtlpConverter(options), directory, NullLogger.Instance).SaveAsync(Ct);

            var second = new TelemetryStore(Options.Create(options));
            await new TelemetryPersistence(second, new OtlpConverter(options), directory, NullLogger.Instance).LoadAsync(Ct);
            var trace = second.GetTrace(7.ToString("x32"))!;
            Assert.Equal(["span 1", "span 2"], trace.Spans.Select(s => s.Span.Name));
            Assert.Equal("worker-0", trace.Spans[1].Span.Source.InstanceId);
            Assert.Equal(AttributeKind.Int, trace.Spans[0].Span.Attributes[0].Kind);
            var log = Assert.Single(second.GetLogs(new LogQuery()).Logs);
            Assert.Equal(("Error", "message 1"), (log.Level, log.Message));
            var latency = second.GetInstrument("api", "m", "latency")!;
            Assert.Equal([0.1, 0.2], latency.ExplicitBounds);
            Assert.Equal(4UL, latency.Series[0].Points[0].Count);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
