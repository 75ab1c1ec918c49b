namespace Platform.Hosting.Telemetry;

/// <summary>Filters for the trace list.</summary>
/// <param name="Resource">Only traces with a span from this resource.</param>
/// <param name="ErrorsOnly">Only traces with a failed span.</param>
/// <param name="Text">Case-insensitive match on span names, trace id or attribute values.</param>
/// <param name="MinDurationMs">Only traces at least this long.</param>
/// <param name="Limit">Most traces returned (newest first).</param>
public sealed record TraceQuery(string? Resource = null, bool ErrorsOnly = false, string? Text = null, double? MinDurationMs = null, int Limit = 100);

/// <summary>How many spans of a trace one resource produced.</summary>
public sealed record TraceResourceCount(string Resource, int Spans);

/// <summary>One row of the trace list.</summary>
public sealed record TraceSummary(
    string TraceId,
    string RootName,
    string RootResource,
    long StartUnixNano,
    double DurationMs,
    int SpanCount,
    int ErrorCount,
    IReadOnlyList<TraceResourceCount> Resources)
{
    /// <summary>Start time.</summary>
    public DateTimeOffset Start => TelemetryTime.FromUnixNano(StartUnixNano);
}

/// <summary>A page of the trace list.</summary>
public sealed record TraceListResult(int Total, IReadOnlyList<TraceSummary> Traces);

/// <summary>A span placed in the waterfall.</summary>
/// <param name="Span">The span.</param>
/// <param name="Depth">Nesting depth (roots are 0).</param>
/// <param name="OffsetMs">Start relative to the trace's start.</param>
public sealed record WaterfallSpan(SpanRecord Span, int Depth, double OffsetMs);

/// <summary>One trace with its spans in waterfall order (depth-first, children by start time).</summary>
public sealed record TraceDetail(TraceSummary Summary, IReadOnlyList<WaterfallSpan> Spans);

/// <summary>Filters for structured logs.</summary>
/// <param name="Resource">Only this resource.</param>
/// <param name="MinLevel">Lowest level (Trace … Critical).</param>
/// <param name="Text">Case-insensitive match on the message, category and attribute values.</param>
/// <param name="TraceId">Only records of this trace.</param>
/// <param name="AfterSequence">Only records newer than this sequence (live tailing).</param>
/// <param name="Limit">Most records returned (newest first).</param>
public sealed record LogQuery(string? Resource = null, string? MinLevel = null, string? Text = null, string? TraceId = null,
    long? AfterSequence = null, int Limit = 200);

/// <summary>A page of structured logs.</summary>
/// <param name="Total">Records matching the filter.</param>
/// <param name="LastSequence">Highest sequence stored (pass back as <c>AfterSequence</c>).</param>
/// <param name="Logs">Newest first.</param>
public sealed record LogListResult(int Total, long LastSequence, IReadOnlyList<LogRecordEntry> Logs);

/// <summary>Aggregation temporality of a metric stream.</summary>
public enum MetricTemporality
{
    /// <summary>Not applicable (gauges) or not given.</summary>
    Unspecified,

    /// <summary>Each point covers its own interval.</summary>
    Delta,

    /// <summary>Each point covers the time since a fixed start.</summary>
    Cumulative,
}

/// <summary>An instrument as listed in the metrics view.</summary>
public sealed record InstrumentSummary(
    string Resource,
    string Meter,
    string Name,
    string Description,
    string Unit,
    MetricKind Kind,
    bool IsMonotonic,
    MetricTemporality Temporality,
    int SeriesCount,
    long LastTimeUnixNano);

/// <summary>The points of one series (one replica and attribute set).</summary>
public sealed record MetricSeriesData(string InstanceId, IReadOnlyList<TelemetryAttribute> Attributes, IReadOnlyList<MetricPointRecord> Points);

/// <summary>An instrument with all its series.</summary>
public sealed record InstrumentData(InstrumentSummary Summary, IReadOnlyList<double>? ExplicitBounds, IReadOnlyList<MetricSeriesData> Series);

/// <summary>What the store holds for one resource.</summary>
public sealed record TelemetryResourceSummary(string Resource, IReadOnlyList<string> Instances, int Spans, int Logs, int Instruments, int Series);

/// <summary>Unix-nanosecond time helpers.</summary>
public static class TelemetryTime
{
    /// <summary>Converts Unix nanoseconds to a timestamp.</summary>
    public static DateTimeOffset FromUnixNano(long unixNano) => DateTimeOffset.UnixEpoch.AddTicks(unixNano / 100);

    /// <summary>Converts a timestamp to Unix nanoseconds.</summary>
    public static long ToUnixNano(DateTimeOffset time) => (time - DateTimeOffset.UnixEpoch).Ticks * 100;
}
