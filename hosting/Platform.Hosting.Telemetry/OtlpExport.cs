using System.Globalization;
using System.Text.Json;
using Google.Protobuf;
using Platform.Hosting.Telemetry.Otlp.Collector.Logs;
using Platform.Hosting.Telemetry.Otlp.Collector.Metrics;
using Platform.Hosting.Telemetry.Otlp.Collector.Trace;
using Platform.Hosting.Telemetry.Otlp.Common;
using Platform.Hosting.Telemetry.Otlp.Logs;
using Platform.Hosting.Telemetry.Otlp.Metrics;
using Platform.Hosting.Telemetry.Otlp.Trace;
using OtlpResource = Platform.Hosting.Telemetry.Otlp.Resource.Resource;
using OtlpSpan = Platform.Hosting.Telemetry.Otlp.Trace.Span;

namespace Platform.Hosting.Telemetry;

/// <summary>Stored records back to OTLP: protobuf requests (persistence) and OTLP-JSON (trace export).</summary>
public static class OtlpExport
{
    /// <summary>
    /// Writes spans as an OTLP-JSON <c>TracesData</c> document (the file format of the OTLP specification:
    /// hex ids, integer enums, 64-bit integers as strings), grouped by resource and scope.
    /// </summary>
    public static void WriteTraceJson(Utf8JsonWriter w, IEnumerable<SpanRecord> spans)
    {
        w.WriteStartObject();
        w.WriteStartArray("resourceSpans");
        foreach (var byResource in spans.GroupBy(s => s.Source))
        {
            w.WriteStartObject();
            w.WriteStartObject("resource");
            WriteJsonAttributes(w, "attributes", byResource.Key.Attributes);
            w.WriteEndObject();
            w.WriteStartArray("scopeSpans");
            foreach (var byScope in byResource.GroupBy(s => (s.Scope, s.ScopeVersion)))
            {
                w.WriteStartObject();
                w.WriteStartObject("scope");
                w.WriteString("name", byScope.Key.Scope);
                if (byScope.Key.ScopeVersion is { } v)
                {
                    w.WriteString("version", v);
                }

                w.WriteEndObject();
                w.WriteStartArray("spans");
                foreach (var s in byScope.OrderBy(s => s.StartUnixNano))
                {
                    w.WriteStartObject();
                    w.WriteString("traceId", s.TraceId);
                    w.WriteString("spanId", s.SpanId);
                    if (s.TraceState is { } ts)
                    {
                        w.WriteString("traceState", ts);
                    }

                    if (s.ParentSpanId is { } p)
                    {
                        w.WriteString("parentSpanId", p);
                    }

                    w.WriteString("name", s.Name);
                    w.WriteNumber("kind", (int)s.Kind);
                    w.WriteString("startTimeUnixNano", s.StartUnixNano.ToString(CultureInfo.InvariantCulture));
                    w.WriteString("endTimeUnixNano", s.EndUnixNano.ToString(CultureInfo.InvariantCulture));
                    WriteJsonAttributes(w, "attributes", s.Attributes);
                    if (s.Events.Count > 0)
                    {
                        w.WriteStartArray("events");
                        foreach (var e in s.Events)
                        {
                            w.WriteStartObject();
                            w.WriteString("timeUnixNano", e.TimeUnixNano.ToString(CultureInfo.InvariantCulture));
                            w.WriteString("name", e.Name);
                            WriteJsonAttributes(w, "attributes", e.Attributes);
                            w.WriteEndObject();
                        }

                        w.WriteEndArray();
                    }

                    if (s.Links.Count > 0)
                    {
                        w.WriteStartArray("links");
                        foreach (var l in s.Links)
                        {
                            w.WriteStartObject();
                            w.WriteString("traceId", l.TraceId);
                            w.WriteString("spanId", l.SpanId);
                            WriteJsonAttributes(w, "attributes", l.Attributes);
                            w.WriteEndObject();
                        }

                        w.WriteEndArray();
                    }

                    w.WriteStartObject("status");
                    if (s.StatusMessage is { } m)
                    {
                        w.WriteString("message", m);
                    }

                    w.WriteNumber("code", (int)s.Status);
                    w.WriteEndObject();
                    w.WriteEndObject();
                }

                w.WriteEndArray();
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteJsonAttributes(Utf8JsonWriter w, string name, IReadOnlyList<TelemetryAttribute> attributes)
    {
        w.WriteStartArray(name);
        foreach (var a in attributes)
        {
            w.WriteStartObject();
            w.WriteString("key", a.Key);
            w.WriteStartObject("value");
            switch (a.Kind)
            {
                case AttributeKind.Bool:
                    w.WriteBoolean("boolValue", a.Value == "true");
                    break;
                case AttributeKind.Int:
                    // OTLP-JSON encodes 64-bit integers as decimal strings.
                    w.WriteString("intValue", a.Value);
                    break;
                case AttributeKind.Double when double.TryParse(a.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d):
                    w.WriteNumber("doubleValue", d);
                    break;
                case AttributeKind.Bytes:
                    w.WriteString("bytesValue", a.Value);
                    break;
                case AttributeKind.Empty:
                    break;
                default:
                    w.WriteString("stringValue", a.Value);
                    break;
            }

            w.WriteEndObject();
            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    /// <summary>Spans as an OTLP protobuf export request.</summary>
    public static ExportTraceServiceRequest ToTraceRequest(IEnumerable<SpanRecord> spans)
    {
        var request = new ExportTraceServiceRequest();
        foreach (var byResource in spans.GroupBy(s => s.Source))
        {
            var rs = new ResourceSpans { Resource = Resource(byResource.Key) };
            foreach (var byScope in byResource.GroupBy(s => (s.Scope, s.ScopeVersion)))
            {
                var ss = new ScopeSpans { Scope = new InstrumentationScope { Name = byScope.Key.Scope, Version = byScope.Key.ScopeVersion ?? string.Empty } };
                foreach (var s in byScope)
                {
                    var span = new OtlpSpan
                    {
                        TraceId = Id(s.TraceId),
                        SpanId = Id(s.SpanId),
                        ParentSpanId = Id(s.ParentSpanId),
                        TraceState = s.TraceState ?? string.Empty,
                        Name = s.Name,
                        Kind = (OtlpSpan.Types.SpanKind)(int)s.Kind,
                        StartTimeUnixNano = (ulong)s.StartUnixNano,
                        EndTimeUnixNano = (ulong)s.EndUnixNano,
                        Status = new Status { Code = (Status.Types.StatusCode)(int)s.Status, Message = s.StatusMessage ?? string.Empty },
                    };
                    span.Attributes.AddRange(KeyValues(s.Attributes));
                    foreach (var e in s.Events)
                    {
                        var ev = new OtlpSpan.Types.Event { TimeUnixNano = (ulong)e.TimeUnixNano, Name = e.Name };
                        ev.Attributes.AddRange(KeyValues(e.Attributes));
                        span.Events.Add(ev);
                    }

                    foreach (var l in s.Links)
                    {
                        var link = new OtlpSpan.Types.Link { TraceId = Id(l.TraceId), SpanId = Id(l.SpanId) };
                        link.Attributes.AddRange(KeyValues(l.Attributes));
                        span.Links.Add(link);
                    }

                    ss.Spans.Add(span);
                }

                rs.ScopeSpans.Add(ss);
            }

            request.ResourceSpans.Add(rs);
        }

        return request;
    }

    /// <summary>Log records as an OTLP protobuf export request.</summary>
    public static ExportLogsServiceRequest ToLogsRequest(IEnumerable<LogRecordEntry> logs)
    {
        var request = new ExportLogsServiceRequest();
        foreach (var byResource in logs.GroupBy(l => l.Source))
        {
            var rl = new ResourceLogs { Resource = Resource(byResource.Key) };
            foreach (var byScope in byResource.GroupBy(l => l.Scope))
            {
                var sl = new ScopeLogs { Scope = new InstrumentationScope { Name = byScope.Key } };
                foreach (var l in byScope)
                {
                    var record = new LogRecord
                    {
                        TimeUnixNano = (ulong)l.TimeUnixNano,
                        SeverityNumber = (SeverityNumber)l.SeverityNumber,
                        SeverityText = l.SeverityText ?? string.Empty,
                        Body = new AnyValue { StringValue = l.Message },
                        EventName = l.EventName ?? string.Empty,
                        TraceId = Id(l.TraceId),
                        SpanId = Id(l.SpanId),
                    };
                    record.Attributes.AddRange(KeyValues(l.Attributes));
                    sl.LogRecords.Add(record);
                }

                rl.ScopeLogs.Add(sl);
            }

            request.ResourceLogs.Add(rl);
        }

        return request;
    }

    /// <summary>Instruments as an OTLP protobuf export request (points as received: cumulative stays cumulative).</summary>
    public static ExportMetricsServiceRequest ToMetricsRequest(IEnumerable<InstrumentData> instruments,
        IReadOnlyDictionary<string, Dictionary<string, IReadOnlyList<TelemetryAttribute>>> sourceAttributes)
    {
        var request = new ExportMetricsServiceRequest();
        foreach (var instrument in instruments)
        {
            foreach (var series in instrument.Series.GroupBy(s => s.InstanceId))
            {
                var attributes = sourceAttributes.TryGetValue(instrument.Summary.Resource, out var byInstance) && byInstance.TryGetValue(series.Key, out var a)
                    ? a
                    : [new TelemetryAttribute("service.name", instrument.Summary.Resource), new TelemetryAttribute("service.instance.id", series.Key)];
                var metric = new Metric { Name = instrument.Summary.Name, Description = instrument.Summary.Description, Unit = instrument.Summary.Unit };
                var temporality = (AggregationTemporality)(int)instrument.Summary.Temporality;
                switch (instrument.Summary.Kind)
                {
                    case MetricKind.Gauge:
                        metric.Gauge = new Gauge();
                        metric.Gauge.DataPoints.AddRange(series.SelectMany(s => s.Points.Select(p => Number(s.Attributes, p))));
                        break;
                    case MetricKind.Sum:
                        metric.Sum = new Sum { IsMonotonic = instrument.Summary.IsMonotonic, AggregationTemporality = temporality };
                        metric.Sum.DataPoints.AddRange(series.SelectMany(s => s.Points.Select(p => Number(s.Attributes, p))));
                        break;
                    default:
                        // Exponential histograms and summaries are kept as count and sum; they come back as histograms without buckets.
                        metric.Histogram = new Histogram { AggregationTemporality = temporality };
                        foreach (var s in series)
                        {
                            foreach (var p in s.Points)
                            {
                                var hp = new HistogramDataPoint
                                {
                                    StartTimeUnixNano = (ulong)p.StartUnixNano, TimeUnixNano = (ulong)p.TimeUnixNano, Count = p.Count, Sum = p.Value,
                                };
                                hp.Attributes.AddRange(KeyValues(s.Attributes));
                                if (p.BucketCounts is { } counts && instrument.ExplicitBounds is { } bounds && counts.Count == bounds.Count + 1)
                                {
                                    hp.BucketCounts.AddRange(counts);
                                    hp.ExplicitBounds.AddRange(bounds);
                                }

                                metric.Histogram.DataPoints.Add(hp);
                            }
                        }

                        break;
                }

                var rm = new ResourceMetrics { Resource = new OtlpResource() };
                rm.Resource.Attributes.AddRange(KeyValues(attributes));
                var sm = new ScopeMetrics { Scope = new InstrumentationScope { Name = instrument.Summary.Meter } };
                sm.Metrics.Add(metric);
                rm.ScopeMetrics.Add(sm);
                request.ResourceMetrics.Add(rm);
            }
        }

        return request;
    }

    private static NumberDataPoint Number(IReadOnlyList<TelemetryAttribute> attributes, MetricPointRecord p)
    {
        var point = new NumberDataPoint { StartTimeUnixNano = (ulong)p.StartUnixNano, TimeUnixNano = (ulong)p.TimeUnixNano, AsDouble = p.Value };
        point.Attributes.AddRange(KeyValues(attributes));
        return point;
    }

    private static OtlpResource Resource(TelemetrySource source)
    {
        var resource = new OtlpResource();
        resource.Attributes.AddRange(KeyValues(source.Attributes));
        return resource;
    }

    private static IEnumerable<KeyValue> KeyValues(IReadOnlyList<TelemetryAttribute> attributes) =>
        attributes.Select(a => new KeyValue { Key = a.Key, Value = Value(a) });

    private static AnyValue Value(TelemetryAttribute a) => a.Kind switch
    {
        AttributeKind.Bool => new AnyValue { BoolValue = a.Value == "true" },
        AttributeKind.Int when long.TryParse(a.Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l) => new AnyValue { IntValue = l },
        AttributeKind.Double when double.TryParse(a.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => new AnyValue { DoubleValue = d },
        AttributeKind.Empty => new AnyValue(),
        _ => new AnyValue { StringValue = a.Value },
    };

    private static ByteString Id(string? hex) => string.IsNullOrEmpty(hex) ? ByteString.Empty : ByteString.CopyFrom(Convert.FromHexString(hex));
}
