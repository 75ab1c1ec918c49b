namespace Platform.Hosting.Telemetry;

/// <summary>The OTLP value type an attribute had on the wire (kept so an export reproduces it).</summary>
public enum AttributeKind
{
    /// <summary>A string.</summary>
    String,

    /// <summary>A boolean.</summary>
    Bool,

    /// <summary>A 64-bit integer.</summary>
    Int,

    /// <summary>A double.</summary>
    Double,

    /// <summary>Bytes, shown as base64.</summary>
    Bytes,

    /// <summary>An array or key/value list, shown as JSON.</summary>
    Structured,

    /// <summary>No value.</summary>
    Empty,
}

/// <summary>One attribute, formatted for display.</summary>
/// <param name="Key">Attribute key.</param>
/// <param name="Value">Invariant-culture text of the value.</param>
/// <param name="Kind">Wire type.</param>
public sealed record TelemetryAttribute(string Key, string Value, AttributeKind Kind = AttributeKind.String);

/// <summary>OTLP span kinds.</summary>
public enum SpanKind
{
    /// <summary>Not set by the sender.</summary>
    Unspecified,

    /// <summary>Internal operation.</summary>
    Internal,

    /// <summary>Handles a remote request.</summary>
    Server,

    /// <summary>Makes a remote request.</summary>
    Client,

    /// <summary>Sends a message.</summary>
    Producer,

    /// <summary>Receives a message.</summary>
    Consumer,
}

/// <summary>OTLP span status codes.</summary>
public enum SpanStatus
{
    /// <summary>Not set.</summary>
    Unset,

    /// <summary>Explicitly successful.</summary>
    Ok,

    /// <summary>Failed.</summary>
    Error,
}

/// <summary>A span event.</summary>
public sealed record SpanEventRecord(long TimeUnixNano, string Name, IReadOnlyList<TelemetryAttribute> Attributes);

/// <summary>A link from a span to another span.</summary>
public sealed record SpanLinkRecord(string TraceId, string SpanId, IReadOnlyList<TelemetryAttribute> Attributes);

/// <summary>Who sent a batch: the AppHost resource (<c>service.name</c>) and replica (<c>service.instance.id</c>).</summary>
/// <param name="Resource">Resource name.</param>
/// <param name="InstanceId">Replica instance id (the resource name when the sender did not say).</param>
/// <param name="Attributes">All resource attributes of the batch.</param>
public sealed record TelemetrySource(string Resource, string InstanceId, IReadOnlyList<TelemetryAttribute> Attributes);

/// <summary>A stored span.</summary>
public sealed record SpanRecord(
    TelemetrySource Source,
    string Scope,
    string? ScopeVersion,
    string TraceId,
    string SpanId,
    string? ParentSpanId,
    string? TraceState,
    string Name,
    SpanKind Kind,
    long StartUnixNano,
    long EndUnixNano,
    SpanStatus Status,
    string? StatusMessage,
    IReadOnlyList<TelemetryAttribute> Attributes,
    IReadOnlyList<SpanEventRecord> Events,
    IReadOnlyList<SpanLinkRecord> Links)
{
    /// <summary>Resource name.</summary>
    public string Resource => Source.Resource;

    /// <summary>Duration in milliseconds.</summary>
    public double DurationMs => Math.Max(0, EndUnixNano - StartUnixNano) / 1_000_000.0;
}

/// <summary>A stored structured log record.</summary>
public sealed record LogRecordEntry(
    long Sequence,
    TelemetrySource Source,
    string Scope,
    long TimeUnixNano,
    int SeverityNumber,
    string? SeverityText,
    string Message,
    string? EventName,
    IReadOnlyList<TelemetryAttribute> Attributes,
    string? TraceId,
    string? SpanId)
{
    /// <summary>Resource name.</summary>
    public string Resource => Source.Resource;

    /// <summary>Level name from the OTLP severity number (Trace, Debug, Information, Warning, Error, Critical).</summary>
    public string Level => LogLevels.FromSeverity(SeverityNumber);
}

/// <summary>Maps OTLP severity numbers to .NET log level names and back.</summary>
public static class LogLevels
{
    /// <summary>Level names in increasing severity.</summary>
    public static IReadOnlyList<string> Names { get; } = ["Trace", "Debug", "Information", "Warning", "Error", "Critical"];

    /// <summary>The level of an OTLP severity number (1–4 Trace … 21–24 Critical; 0 is Information).</summary>
    public static string FromSeverity(int severity) => severity switch
    {
        <= 0 => "Information",
        <= 4 => "Trace",
        <= 8 => "Debug",
        <= 12 => "Information",
        <= 16 => "Warning",
        <= 20 => "Error",
        _ => "Critical",
    };

    /// <summary>The lowest severity number of a level name; null when the name is unknown.</summary>
    public static int? MinimumSeverity(string level) => level.ToLowerInvariant() switch
    {
        "trace" => 1,
        "debug" => 5,
        "information" or "info" => 9,
        "warning" or "warn" => 13,
        "error" => 17,
        "critical" or "fatal" => 21,
        _ => null,
    };
}

/// <summary>OTLP metric data kinds.</summary>
public enum MetricKind
{
    /// <summary>Last value.</summary>
    Gauge,

    /// <summary>Sum (counter or up-down counter).</summary>
    Sum,

    /// <summary>Explicit-bucket histogram.</summary>
    Histogram,

    /// <summary>Exponential histogram (stored as count and sum).</summary>
    ExponentialHistogram,

    /// <summary>Summary (stored as count and sum).</summary>
    Summary,
}

/// <summary>One data point as received (cumulative or delta, as the sender said).</summary>
/// <param name="StartUnixNano">Start of the aggregation interval.</param>
/// <param name="TimeUnixNano">Time of the point.</param>
/// <param name="Value">Gauge or sum value; histogram sum.</param>
/// <param name="Count">Histogram/summary count.</param>
/// <param name="BucketCounts">Explicit-bucket counts (histograms only).</param>
public sealed record MetricPointRecord(long StartUnixNano, long TimeUnixNano, double Value, ulong Count, IReadOnlyList<ulong>? BucketCounts);
