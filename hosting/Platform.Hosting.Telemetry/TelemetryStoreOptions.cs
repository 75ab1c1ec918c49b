namespace Platform.Hosting.Telemetry;

/// <summary>Bounds of the in-memory telemetry store (configuration section <c>Dashboard:Telemetry</c>).</summary>
public sealed class TelemetryStoreOptions
{
    /// <summary>Spans kept per resource; the oldest go first.</summary>
    public int MaxSpansPerResource { get; set; } = 10_000;

    /// <summary>Structured log records kept per resource; the oldest go first.</summary>
    public int MaxLogsPerResource { get; set; } = 10_000;

    /// <summary>Points kept per metric series (one series per replica and attribute set).</summary>
    public int MaxPointsPerSeries { get; set; } = 1_000;

    /// <summary>Metric series kept per resource; new series beyond this are dropped (cardinality guard).</summary>
    public int MaxSeriesPerResource { get; set; } = 5_000;

    /// <summary>Attributes kept per span, log record or point; the rest are counted as dropped.</summary>
    public int MaxAttributes { get; set; } = 128;

    /// <summary>Longest attribute value kept, in characters.</summary>
    public int MaxAttributeLength { get; set; } = 4_096;
}
