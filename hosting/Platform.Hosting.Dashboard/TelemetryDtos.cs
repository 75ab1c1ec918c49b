using Platform.Hosting.Telemetry;

namespace Platform.Hosting.Dashboard;

/// <summary>A structured log record as the API returns it.</summary>
public sealed record LogDto(
    long Sequence,
    string Resource,
    string InstanceId,
    string Category,
    DateTimeOffset Time,
    long TimeUnixNano,
    string Level,
    int SeverityNumber,
    string Message,
    string? EventName,
    IReadOnlyList<TelemetryAttribute> Attributes,
    string? TraceId,
    string? SpanId)
{
    /// <summary>Maps a stored record.</summary>
    public static LogDto From(LogRecordEntry l) => new(l.Sequence, l.Resource, l.Source.InstanceId, l.Scope, TelemetryTime.FromUnixNano(l.TimeUnixNano),
        l.TimeUnixNano, l.Level, l.SeverityNumber, l.Message, l.EventName, l.Attributes, l.TraceId, l.SpanId);
}

/// <summary>A page of structured logs.</summary>
public sealed record LogPageDto(int Total, long LastSequence, IReadOnlyList<LogDto> Logs);

/// <summary>A span event.</summary>
public sealed record SpanEventDto(string Name, DateTimeOffset Time, double OffsetMs, IReadOnlyList<TelemetryAttribute> Attributes);

/// <summary>A span in a trace's waterfall.</summary>
public sealed record SpanDto(
    string TraceId,
    string SpanId,
    string? ParentSpanId,
    string Name,
    SpanKind Kind,
    string Resource,
    string InstanceId,
    string Scope,
    DateTimeOffset Start,
    long StartUnixNano,
    double DurationMs,
    double OffsetMs,
    int Depth,
    SpanStatus Status,
    string? StatusMessage,
    IReadOnlyList<TelemetryAttribute> Attributes,
    IReadOnlyList<SpanEventDto> Events,
    IReadOnlyList<SpanLinkRecord> Links)
{
    /// <summary>Maps a placed span.</summary>
    public static SpanDto From(WaterfallSpan w, long traceStart)
    {
        var s = w.Span;
        return new SpanDto(s.TraceId, s.SpanId, s.ParentSpanId, s.Name, s.Kind, s.Resource, s.Source.InstanceId, s.Scope,
            TelemetryTime.FromUnixNano(s.StartUnixNano), s.StartUnixNano, s.DurationMs, w.OffsetMs, w.Depth, s.Status, s.StatusMessage, s.Attributes,
            s.Events.Select(e => new SpanEventDto(e.Name, TelemetryTime.FromUnixNano(e.TimeUnixNano), (e.TimeUnixNano - traceStart) / 1_000_000.0, e.Attributes)).ToList(),
            s.Links);
    }
}

/// <summary>One trace for the waterfall view.</summary>
public sealed record TraceDto(TraceSummary Summary, IReadOnlyList<SpanDto> Spans);

/// <summary>A chart of one instrument.</summary>
public sealed record MetricChartDto(InstrumentSummary Instrument, string View, IReadOnlyList<string> Views, IReadOnlyList<ChartSeries> Series);
