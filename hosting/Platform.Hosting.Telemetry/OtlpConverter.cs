using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Google.Protobuf;
using Google.Protobuf.Collections;
using Platform.Hosting.Telemetry.Otlp.Collector.Logs;
using Platform.Hosting.Telemetry.Otlp.Collector.Metrics;
using Platform.Hosting.Telemetry.Otlp.Collector.Trace;
using Platform.Hosting.Telemetry.Otlp.Common;
using Platform.Hosting.Telemetry.Otlp.Metrics;
using OtlpResource = Platform.Hosting.Telemetry.Otlp.Resource.Resource;

namespace Platform.Hosting.Telemetry;

/// <summary>Turns OTLP export requests into the store's records (ids as lower-case hex, values as text).</summary>
public sealed partial class OtlpConverter(TelemetryStoreOptions options)
{
    private const string UnknownService = "unknown_service";

    /// <summary>Converts and stores a trace export; returns the number of spans stored.</summary>
    public int Ingest(ExportTraceServiceRequest request, TelemetryStore store)
    {
        var spans = ConvertSpans(request);
        store.AddSpans(spans);
        return spans.Count;
    }

    /// <summary>Converts and stores a logs export; returns the number of records stored.</summary>
    public int Ingest(ExportLogsServiceRequest request, TelemetryStore store)
    {
        var logs = ConvertLogs(request);
        store.AddLogs(logs);
        return logs.Count;
    }

    /// <summary>Converts and stores a metrics export; returns (points stored, points rejected).</summary>
    public (int Stored, int Rejected) Ingest(ExportMetricsServiceRequest request, TelemetryStore store)
    {
        int stored = 0, rejected = 0;
        foreach (var batch in ConvertMetrics(request))
        {
            var r = store.AddMetric(batch);
            rejected += r;
            stored += batch.Points.Count - r;
        }

        return (stored, rejected);
    }

    /// <summary>Spans of an export request.</summary>
    public List<SpanRecord> ConvertSpans(ExportTraceServiceRequest request)
    {
        var result = new List<SpanRecord>();
        foreach (var rs in request.ResourceSpans)
        {
            var source = Source(rs.Resource);
            foreach (var ss in rs.ScopeSpans)
            {
                var scope = ss.Scope?.Name ?? string.Empty;
                var version = string.IsNullOrEmpty(ss.Scope?.Version) ? null : ss.Scope!.Version;
                foreach (var s in ss.Spans)
                {
                    var traceId = Hex(s.TraceId);
                    var spanId = Hex(s.SpanId);
                    if (traceId is null || spanId is null)
                    {
                        continue;
                    }

                    result.Add(new SpanRecord(
                        source, scope, version, traceId, spanId, Hex(s.ParentSpanId),
                        string.IsNullOrEmpty(s.TraceState) ? null : s.TraceState,
                        s.Name,
                        (SpanKind)Math.Clamp((int)s.Kind, 0, 5),
                        (long)s.StartTimeUnixNano,
                        (long)Math.Max(s.EndTimeUnixNano, s.StartTimeUnixNano),
                        s.Status is null ? SpanStatus.Unset : (SpanStatus)Math.Clamp((int)s.Status.Code, 0, 2),
                        string.IsNullOrEmpty(s.Status?.Message) ? null : s.Status!.Message,
                        Attributes(s.Attributes),
                        s.Events.Count == 0 ? [] : s.Events.Select(e => new SpanEventRecord((long)e.TimeUnixNano, e.Name, Attributes(e.Attributes))).ToList(),
                        s.Links.Count == 0 ? [] : s.Links.Select(l => new SpanLinkRecord(Hex(l.TraceId) ?? string.Empty, Hex(l.SpanId) ?? string.Empty, Attributes(l.Attributes))).ToList()));
                }
            }
        }

        return result;
    }

    /// <summary>Log records of an export request (sequence numbers are assigned by the store).</summary>
    public List<LogRecordEntry> ConvertLogs(ExportLogsServiceRequest request)
    {
        var result = new List<LogRecordEntry>();
        foreach (var rl in request.ResourceLogs)
        {
            var source = Source(rl.Resource);
            foreach (var sl in rl.ScopeLogs)
            {
                var scope = sl.Scope?.Name ?? string.Empty;
                foreach (var l in sl.LogRecords)
                {
                    var attributes = Attributes(l.Attributes);
                    var body = l.Body is null ? string.Empty : Format(l.Body);
                    var time = l.TimeUnixNano != 0 ? l.TimeUnixNano : l.ObservedTimeUnixNano;
                    result.Add(new LogRecordEntry(0, source, scope, (long)time, (int)l.SeverityNumber,
                        string.IsNullOrEmpty(l.SeverityText) ? null : l.SeverityText,
                        FormatTemplate(body, attributes),
                        string.IsNullOrEmpty(l.EventName) ? null : l.EventName,
                        attributes, Hex(l.TraceId), Hex(l.SpanId)));
                }
            }
        }

        return result;
    }

    /// <summary>Metric batches (one per instrument and sender) of an export request.</summary>
    public List<MetricBatch> ConvertMetrics(ExportMetricsServiceRequest request)
    {
        var result = new List<MetricBatch>();
        foreach (var rm in request.ResourceMetrics)
        {
            var source = Source(rm.Resource);
            foreach (var sm in rm.ScopeMetrics)
            {
                var meter = sm.Scope?.Name ?? string.Empty;
                foreach (var m in sm.Metrics)
                {
                    var points = new List<(IReadOnlyList<TelemetryAttribute>, MetricPointRecord, IReadOnlyList<double>?)>();
                    MetricKind kind;
                    var monotonic = false;
                    var temporality = MetricTemporality.Unspecified;
                    switch (m.DataCase)
                    {
                        case Metric.DataOneofCase.Gauge:
                            kind = MetricKind.Gauge;
                            AddNumbers(m.Gauge.DataPoints, points);
                            break;
                        case Metric.DataOneofCase.Sum:
                            kind = MetricKind.Sum;
                            monotonic = m.Sum.IsMonotonic;
                            temporality = (MetricTemporality)Math.Clamp((int)m.Sum.AggregationTemporality, 0, 2);
                            AddNumbers(m.Sum.DataPoints, points);
                            break;
                        case Metric.DataOneofCase.Histogram:
                            kind = MetricKind.Histogram;
                            temporality = (MetricTemporality)Math.Clamp((int)m.Histogram.AggregationTemporality, 0, 2);
                            foreach (var p in m.Histogram.DataPoints)
                            {
                                points.Add((Attributes(p.Attributes),
                                    new MetricPointRecord((long)p.StartTimeUnixNano, (long)p.TimeUnixNano, p.HasSum ? p.Sum : 0, p.Count, [.. p.BucketCounts]),
                                    p.ExplicitBounds.Count == 0 ? null : [.. p.ExplicitBounds]));
                            }

                            break;
                        case Metric.DataOneofCase.ExponentialHistogram:
                            kind = MetricKind.ExponentialHistogram;
                            temporality = (MetricTemporality)Math.Clamp((int)m.ExponentialHistogram.AggregationTemporality, 0, 2);
                            foreach (var p in m.ExponentialHistogram.DataPoints)
                            {
                                points.Add((Attributes(p.Attributes),
                                    new MetricPointRecord((long)p.StartTimeUnixNano, (long)p.TimeUnixNano, p.HasSum ? p.Sum : 0, p.Count, null), null));
                            }

                            break;
                        case Metric.DataOneofCase.Summary:
                            kind = MetricKind.Summary;
                            temporality = MetricTemporality.Cumulative;
                            foreach (var p in m.Summary.DataPoints)
                            {
                                points.Add((Attributes(p.Attributes),
                                    new MetricPointRecord((long)p.StartTimeUnixNano, (long)p.TimeUnixNano, p.Sum, p.Count, null), null));
                            }

                            break;
                        default:
                            continue;
                    }

                    result.Add(new MetricBatch(source, meter, m.Name, m.Description, m.Unit, kind, monotonic, temporality, points));
                }
            }
        }

        return result;
    }

    private void AddNumbers(RepeatedField<NumberDataPoint> dataPoints,
        List<(IReadOnlyList<TelemetryAttribute>, MetricPointRecord, IReadOnlyList<double>?)> points)
    {
        foreach (var p in dataPoints)
        {
            var value = p.ValueCase == NumberDataPoint.ValueOneofCase.AsInt ? p.AsInt : p.AsDouble;
            points.Add((Attributes(p.Attributes), new MetricPointRecord((long)p.StartTimeUnixNano, (long)p.TimeUnixNano, value, 0, null), null));
        }
    }

    /// <summary>The sender: <c>service.name</c> is the AppHost resource name, <c>service.instance.id</c> the replica.</summary>
    public TelemetrySource Source(OtlpResource? resource)
    {
        var attributes = resource is null ? [] : Attributes(resource.Attributes);
        string? name = null, instance = null;
        foreach (var a in attributes)
        {
            if (a.Key == "service.name")
            {
                name = a.Value;
            }
            else if (a.Key == "service.instance.id")
            {
                instance = a.Value;
            }
        }

        name = string.IsNullOrEmpty(name) ? UnknownService : name;
        return new TelemetrySource(name, string.IsNullOrEmpty(instance) ? name : instance, attributes);
    }

    /// <summary>Attributes as text, bounded in number and length.</summary>
    public IReadOnlyList<TelemetryAttribute> Attributes(RepeatedField<KeyValue> attributes)
    {
        if (attributes.Count == 0)
        {
            return [];
        }

        var count = Math.Min(attributes.Count, options.MaxAttributes);
        var result = new TelemetryAttribute[count];
        for (var i = 0; i < count; i++)
        {
            var kv = attributes[i];
            var (text, kind) = kv.Value is null ? (string.Empty, AttributeKind.Empty) : FormatWithKind(kv.Value);
            if (text.Length > options.MaxAttributeLength)
            {
                text = text[..options.MaxAttributeLength] + "…";
            }

            result[i] = new TelemetryAttribute(kv.Key, text, kind);
        }

        return result;
    }

    /// <summary>Lower-case hex of an id; null for an empty or all-zero id.</summary>
    public static string? Hex(ByteString bytes)
    {
        if (bytes.IsEmpty)
        {
            return null;
        }

        var span = bytes.Span;
        return span.IndexOfAnyExcept((byte)0) < 0 ? null : Convert.ToHexStringLower(span);
    }

    private static string Format(AnyValue value) => FormatWithKind(value).Text;

    private static (string Text, AttributeKind Kind) FormatWithKind(AnyValue value) => value.ValueCase switch
    {
        AnyValue.ValueOneofCase.StringValue => (value.StringValue, AttributeKind.String),
        AnyValue.ValueOneofCase.BoolValue => (value.BoolValue ? "true" : "false", AttributeKind.Bool),
        AnyValue.ValueOneofCase.IntValue => (value.IntValue.ToString(CultureInfo.InvariantCulture), AttributeKind.Int),
        AnyValue.ValueOneofCase.DoubleValue => (value.DoubleValue.ToString("R", CultureInfo.InvariantCulture), AttributeKind.Double),
        AnyValue.ValueOneofCase.BytesValue => (value.BytesValue.ToBase64(), AttributeKind.Bytes),
        AnyValue.ValueOneofCase.ArrayValue or AnyValue.ValueOneofCase.KvlistValue => (ToJson(value), AttributeKind.Structured),
        _ => (string.Empty, AttributeKind.Empty),
    };

    private static string ToJson(AnyValue value)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            WriteJson(writer, value);
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static void WriteJson(Utf8JsonWriter writer, AnyValue value)
    {
        switch (value.ValueCase)
        {
            case AnyValue.ValueOneofCase.StringValue:
                writer.WriteStringValue(value.StringValue);
                break;
            case AnyValue.ValueOneofCase.BoolValue:
                writer.WriteBooleanValue(value.BoolValue);
                break;
            case AnyValue.ValueOneofCase.IntValue:
                writer.WriteNumberValue(value.IntValue);
                break;
            case AnyValue.ValueOneofCase.DoubleValue when double.IsFinite(value.DoubleValue):
                writer.WriteNumberValue(value.DoubleValue);
                break;
            case AnyValue.ValueOneofCase.BytesValue:
                writer.WriteStringValue(value.BytesValue.ToBase64());
                break;
            case AnyValue.ValueOneofCase.ArrayValue:
                writer.WriteStartArray();
                foreach (var v in value.ArrayValue.Values)
                {
                    WriteJson(writer, v);
                }

                writer.WriteEndArray();
                break;
            case AnyValue.ValueOneofCase.KvlistValue:
                writer.WriteStartObject();
                foreach (var kv in value.KvlistValue.Values)
                {
                    writer.WritePropertyName(kv.Key);
                    if (kv.Value is null)
                    {
                        writer.WriteNullValue();
                    }
                    else
                    {
                        WriteJson(writer, kv.Value);
                    }
                }

                writer.WriteEndObject();
                break;
            default:
                writer.WriteNullValue();
                break;
        }
    }

    /// <summary>
    /// .NET's exporter sends the message template as the body and the arguments as attributes; show the
    /// formatted message, as the console would.
    /// </summary>
    internal static string FormatTemplate(string body, IReadOnlyList<TelemetryAttribute> attributes)
    {
        if (body.IndexOf('{') < 0 || attributes.Count == 0)
        {
            return body;
        }

        return Placeholder().Replace(body, m =>
        {
            var name = m.Groups[1].Value;
            foreach (var a in attributes)
            {
                if (a.Key == name)
                {
                    return a.Value;
                }
            }

            return m.Value;
        });
    }

    [GeneratedRegex(@"\{@?([A-Za-z0-9_.]+)(?:[,:][^}]*)?\}")]
    private static partial Regex Placeholder();
}
