using Microsoft.Extensions.Options;

namespace Platform.Hosting.Telemetry;

/// <summary>
/// Spans, structured logs and metric points received over OTLP, bounded per resource so a chatty
/// service cannot push the others out (or the AppHost out of memory). Thread-safe; one lock, held only
/// for inserts and for copying out query results — conversion from protobuf happens before.
/// </summary>
public sealed class TelemetryStore
{
    private readonly Lock _gate = new();
    private readonly TelemetryStoreOptions _options;
    private readonly Dictionary<string, ResourceData> _resources = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, TraceData> _traces = new(StringComparer.Ordinal);
    private long _logSequence;
    private long _version;

    /// <summary>Creates a store with the given bounds.</summary>
    public TelemetryStore(IOptions<TelemetryStoreOptions> options)
    {
        _options = options.Value;
    }

    /// <summary>The bounds in force.</summary>
    public TelemetryStoreOptions Options => _options;

    /// <summary>Increases on every change (persistence saves only when it moved).</summary>
    public long Version => Interlocked.Read(ref _version);

    /// <summary>Stores spans; a resource over its bound loses its oldest spans.</summary>
    public void AddSpans(IReadOnlyList<SpanRecord> spans)
    {
        if (spans.Count == 0)
        {
            return;
        }

        lock (_gate)
        {
            foreach (var span in spans)
            {
                var resource = GetResource(span.Source);
                resource.Spans.Enqueue(span);
                if (!_traces.TryGetValue(span.TraceId, out var trace))
                {
                    _traces[span.TraceId] = trace = new TraceData();
                }

                trace.Spans.Add(span);
                while (resource.Spans.Count > _options.MaxSpansPerResource)
                {
                    RemoveFromTrace(resource.Spans.Dequeue());
                }
            }

            _version++;
        }
    }

    /// <summary>Stores log records (their sequence numbers are assigned here); returns the last sequence.</summary>
    public long AddLogs(IReadOnlyList<LogRecordEntry> logs)
    {
        lock (_gate)
        {
            foreach (var log in logs)
            {
                var resource = GetResource(log.Source);
                resource.Logs.Enqueue(log with { Sequence = ++_logSequence });
                while (resource.Logs.Count > _options.MaxLogsPerResource)
                {
                    resource.Logs.Dequeue();
                }
            }

            if (logs.Count > 0)
            {
                _version++;
            }

            return _logSequence;
        }
    }

    /// <summary>Stores metric points of one instrument.</summary>
    /// <returns>Points rejected because the resource has too many series.</returns>
    public int AddMetric(MetricBatch batch)
    {
        lock (_gate)
        {
            var resource = GetResource(batch.Source);
            var key = (batch.Meter, batch.Name);
            if (!resource.Instruments.TryGetValue(key, out var instrument))
            {
                resource.Instruments[key] = instrument = new InstrumentState(batch.Meter, batch.Name);
            }

            instrument.Description = batch.Description;
            instrument.Unit = batch.Unit;
            instrument.Kind = batch.Kind;
            instrument.IsMonotonic = batch.IsMonotonic;
            instrument.Temporality = batch.Temporality;
            var rejected = 0;
            foreach (var (attributes, point, bounds) in batch.Points)
            {
                var seriesKey = SeriesKey(batch.Source.InstanceId, attributes);
                if (!instrument.Series.TryGetValue(seriesKey, out var series))
                {
                    if (resource.SeriesCount >= _options.MaxSeriesPerResource)
                    {
                        rejected++;
                        continue;
                    }

                    instrument.Series[seriesKey] = series = new SeriesData(batch.Source.InstanceId, attributes);
                    resource.SeriesCount++;
                }

                if (bounds is not null)
                {
                    instrument.Bounds = bounds;
                }

                series.Points.Enqueue(point);
                instrument.LastTimeUnixNano = Math.Max(instrument.LastTimeUnixNano, point.TimeUnixNano);
                while (series.Points.Count > _options.MaxPointsPerSeries)
                {
                    series.Points.Dequeue();
                }
            }

            _version++;
            return rejected;
        }
    }

    /// <summary>Forgets everything (or one resource's telemetry).</summary>
    public void Clear(string? resource = null)
    {
        lock (_gate)
        {
            if (resource is null)
            {
                _resources.Clear();
                _traces.Clear();
            }
            else if (_resources.Remove(resource, out var data))
            {
                foreach (var span in data.Spans)
                {
                    RemoveFromTrace(span);
                }
            }

            _version++;
        }
    }

    /// <summary>Resources that sent telemetry, with counts.</summary>
    public IReadOnlyList<TelemetryResourceSummary> GetResources()
    {
        lock (_gate)
        {
            return _resources.Values.OrderBy(r => r.Name, StringComparer.OrdinalIgnoreCase)
                .Select(r => new TelemetryResourceSummary(r.Name, r.Instances.Order(StringComparer.Ordinal).ToList(), r.Spans.Count,
                    r.Logs.Count, r.Instruments.Count, r.SeriesCount))
                .ToList();
        }
    }

    /// <summary>Total spans stored.</summary>
    public int SpanCount
    {
        get
        {
            lock (_gate)
            {
                return _resources.Values.Sum(r => r.Spans.Count);
            }
        }
    }

    /// <summary>The trace list, newest first.</summary>
    public TraceListResult GetTraces(TraceQuery query)
    {
        List<SpanRecord[]> traces;
        lock (_gate)
        {
            traces = new List<SpanRecord[]>(_traces.Count);
            foreach (var t in _traces.Values)
            {
                if (query.Resource is null || t.Spans.Exists(s => string.Equals(s.Resource, query.Resource, StringComparison.OrdinalIgnoreCase)))
                {
                    traces.Add([.. t.Spans]);
                }
            }
        }

        var limit = Math.Clamp(query.Limit, 1, 10_000);
        if (!query.ErrorsOnly && query.MinDurationMs is null && string.IsNullOrEmpty(query.Text))
        {
            // The default list needs only the newest few: order by start and summarize just those.
            var newest = traces.Select(t => (Spans: t, Start: MinStart(t))).OrderByDescending(t => t.Start).Take(limit)
                .Select(t => Summarize(t.Spans)).ToList();
            return new TraceListResult(traces.Count, newest);
        }

        // Summaries are computed outside the lock: readers never hold up ingestion for long.
        var matched = new List<TraceSummary>();
        foreach (var spans in traces)
        {
            var summary = Summarize(spans);
            if ((query.ErrorsOnly && summary.ErrorCount == 0)
                || (query.MinDurationMs is { } min && summary.DurationMs < min)
                || (!string.IsNullOrEmpty(query.Text) && !Matches(spans, summary, query.Text)))
            {
                continue;
            }

            matched.Add(summary);
        }

        var page = matched.OrderByDescending(t => t.StartUnixNano).Take(limit).ToList();
        return new TraceListResult(matched.Count, page);
    }

    /// <summary>The spans of one trace in waterfall order; null when unknown.</summary>
    public TraceDetail? GetTrace(string traceId)
    {
        SpanRecord[] spans;
        lock (_gate)
        {
            if (!_traces.TryGetValue(traceId.ToLowerInvariant(), out var trace))
            {
                return null;
            }

            spans = [.. trace.Spans];
        }

        var summary = Summarize(spans);
        var ids = spans.Select(s => s.SpanId).ToHashSet(StringComparer.Ordinal);
        var children = spans.Where(s => s.ParentSpanId is not null && ids.Contains(s.ParentSpanId))
            .GroupBy(s => s.ParentSpanId!)
            .ToDictionary(g => g.Key, g => g.OrderBy(s => s.StartUnixNano).ToList(), StringComparer.Ordinal);
        var ordered = new List<WaterfallSpan>(spans.Length);
        var visited = new HashSet<string>(StringComparer.Ordinal);
        void Visit(SpanRecord span, int depth)
        {
            if (!visited.Add(span.SpanId))
            {
                return;
            }

            ordered.Add(new WaterfallSpan(span, depth, (span.StartUnixNano - summary.StartUnixNano) / 1_000_000.0));
            if (children.TryGetValue(span.SpanId, out var list))
            {
                foreach (var child in list)
                {
                    Visit(child, depth + 1);
                }
            }
        }

        // Roots: no parent, or a parent we never received (its service may not export, or it was evicted).
        foreach (var root in spans.Where(s => s.ParentSpanId is null || !ids.Contains(s.ParentSpanId)).OrderBy(s => s.StartUnixNano))
        {
            Visit(root, 0);
        }

        foreach (var rest in spans.Where(s => !visited.Contains(s.SpanId)))
        {
            Visit(rest, 0);
        }

        return new TraceDetail(summary, ordered);
    }

    /// <summary>Structured logs, newest first.</summary>
    public LogListResult GetLogs(LogQuery query)
    {
        var minSeverity = query.MinLevel is null ? null : LogLevels.MinimumSeverity(query.MinLevel);
        var traceId = string.IsNullOrEmpty(query.TraceId) ? null : query.TraceId.ToLowerInvariant();
        var limit = Math.Clamp(query.Limit, 1, 10_000);
        List<LogRecordEntry> matched = [];
        long last;
        lock (_gate)
        {
            last = _logSequence;
            foreach (var resource in _resources.Values)
            {
                if (query.Resource is not null && !string.Equals(resource.Name, query.Resource, StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }

                foreach (var log in resource.Logs)
                {
                    if ((query.AfterSequence is { } after && log.Sequence <= after)
                        || (minSeverity is { } sev && log.SeverityNumber < sev && log.SeverityNumber != 0)
                        || (traceId is not null && log.TraceId != traceId)
                        || (!string.IsNullOrEmpty(query.Text) && !Matches(log, query.Text)))
                    {
                        continue;
                    }

                    matched.Add(log);
                }
            }
        }

        var page = matched.OrderByDescending(l => l.TimeUnixNano).ThenByDescending(l => l.Sequence).Take(limit).ToList();
        return new LogListResult(matched.Count, last, page);
    }

    /// <summary>Instruments, by resource, meter and name.</summary>
    public IReadOnlyList<InstrumentSummary> GetInstruments(string? resource = null)
    {
        lock (_gate)
        {
            return _resources.Values
                .Where(r => resource is null || string.Equals(r.Name, resource, StringComparison.OrdinalIgnoreCase))
                .SelectMany(r => r.Instruments.Values.Select(i => Describe(r.Name, i)))
                .OrderBy(i => i.Resource, StringComparer.OrdinalIgnoreCase).ThenBy(i => i.Meter, StringComparer.Ordinal)
                .ThenBy(i => i.Name, StringComparer.Ordinal)
                .ToList();
        }
    }

    /// <summary>One instrument with its series; null when unknown.</summary>
    public InstrumentData? GetInstrument(string resource, string meter, string name)
    {
        lock (_gate)
        {
            if (!_resources.TryGetValue(resource, out var r) || !r.Instruments.TryGetValue((meter, name), out var i))
            {
                return null;
            }

            return new InstrumentData(Describe(r.Name, i), i.Bounds,
                i.Series.Values.Select(s => new MetricSeriesData(s.InstanceId, s.Attributes, [.. s.Points])).ToList());
        }
    }

    /// <summary>Everything stored (for persistence).</summary>
    public TelemetrySnapshot Snapshot()
    {
        lock (_gate)
        {
            return new TelemetrySnapshot(
                _resources.Values.SelectMany(r => r.Spans).ToList(),
                _resources.Values.SelectMany(r => r.Logs).OrderBy(l => l.Sequence).ToList(),
                _resources.Values.SelectMany(r => r.Instruments.Values.Select(i => (r, i)))
                    .Select(x => new InstrumentData(Describe(x.r.Name, x.i), x.i.Bounds,
                        x.i.Series.Values.Select(s => new MetricSeriesData(s.InstanceId, s.Attributes, [.. s.Points])).ToList()))
                    .ToList(),
                _resources.Values.ToDictionary(r => r.Name, r => r.SourceAttributes, StringComparer.OrdinalIgnoreCase));
        }
    }

    private static InstrumentSummary Describe(string resource, InstrumentState i) =>
        new(resource, i.Meter, i.Name, i.Description, i.Unit, i.Kind, i.IsMonotonic, i.Temporality, i.Series.Count, i.LastTimeUnixNano);

    private ResourceData GetResource(TelemetrySource source)
    {
        if (!_resources.TryGetValue(source.Resource, out var resource))
        {
            _resources[source.Resource] = resource = new ResourceData(source.Resource);
        }

        resource.Instances.Add(source.InstanceId);
        resource.SourceAttributes[source.InstanceId] = source.Attributes;
        return resource;
    }

    private void RemoveFromTrace(SpanRecord span)
    {
        if (_traces.TryGetValue(span.TraceId, out var trace))
        {
            trace.Spans.Remove(span);
            if (trace.Spans.Count == 0)
            {
                _traces.Remove(span.TraceId);
            }
        }
    }

    private static string SeriesKey(string instanceId, IReadOnlyList<TelemetryAttribute> attributes) =>
        attributes.Count == 0
            ? instanceId
            : instanceId + "\u001f" + string.Join('\u001f', attributes.OrderBy(a => a.Key, StringComparer.Ordinal).Select(a => a.Key + "=" + a.Value));

    private static long MinStart(SpanRecord[] spans)
    {
        var start = long.MaxValue;
        foreach (var s in spans)
        {
            start = Math.Min(start, s.StartUnixNano);
        }

        return start;
    }

    private static TraceSummary Summarize(IReadOnlyList<SpanRecord> spans)
    {
        var start = long.MaxValue;
        var end = long.MinValue;
        var errors = 0;
        var ids = new HashSet<string>(spans.Count, StringComparer.Ordinal);
        foreach (var s in spans)
        {
            ids.Add(s.SpanId);
        }

        SpanRecord? root = null;
        var counts = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        foreach (var s in spans)
        {
            start = Math.Min(start, s.StartUnixNano);
            end = Math.Max(end, s.EndUnixNano);
            if (s.Status == SpanStatus.Error)
            {
                errors++;
            }

            counts[s.Resource] = counts.GetValueOrDefault(s.Resource) + 1;
            var isRoot = s.ParentSpanId is null || !ids.Contains(s.ParentSpanId);
            if (isRoot && (root is null || s.StartUnixNano < root.StartUnixNano))
            {
                root = s;
            }
        }

        root ??= spans[0];
        return new TraceSummary(root.TraceId, root.Name, root.Resource, start, Math.Max(0, end - start) / 1_000_000.0, spans.Count, errors,
            counts.Select(kv => new TraceResourceCount(kv.Key, kv.Value)).OrderByDescending(c => c.Spans).ThenBy(c => c.Resource, StringComparer.Ordinal).ToList());
    }

    private static bool Matches(IReadOnlyList<SpanRecord> spans, TraceSummary summary, string text)
    {
        if (summary.TraceId.Contains(text, StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        foreach (var s in spans)
        {
            if (s.Name.Contains(text, StringComparison.OrdinalIgnoreCase) || Contains(s.Attributes, text))
            {
                return true;
            }
        }

        return false;
    }

    private static bool Matches(LogRecordEntry log, string text) =>
        log.Message.Contains(text, StringComparison.OrdinalIgnoreCase)
        || log.Scope.Contains(text, StringComparison.OrdinalIgnoreCase)
        || (log.EventName?.Contains(text, StringComparison.OrdinalIgnoreCase) ?? false)
        || Contains(log.Attributes, text);

    private static bool Contains(IReadOnlyList<TelemetryAttribute> attributes, string text)
    {
        foreach (var a in attributes)
        {
            if (a.Value.Contains(text, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    private sealed class ResourceData(string name)
    {
        public string Name { get; } = name;

        public HashSet<string> Instances { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, IReadOnlyList<TelemetryAttribute>> SourceAttributes { get; } = new(StringComparer.Ordinal);

        public Queue<SpanRecord> Spans { get; } = new();

        public Queue<LogRecordEntry> Logs { get; } = new();

        public Dictionary<(string Meter, string Name), InstrumentState> Instruments { get; } = [];

        public int SeriesCount { get; set; }
    }

    private sealed class TraceData
    {
        public List<SpanRecord> Spans { get; } = new(4);
    }

    private sealed class InstrumentState(string meter, string name)
    {
        public string Meter { get; } = meter;

        public string Name { get; } = name;

        public string Description { get; set; } = string.Empty;

        public string Unit { get; set; } = string.Empty;

        public MetricKind Kind { get; set; }

        public bool IsMonotonic { get; set; }

        public MetricTemporality Temporality { get; set; }

        public IReadOnlyList<double>? Bounds { get; set; }

        public long LastTimeUnixNano { get; set; }

        public Dictionary<string, SeriesData> Series { get; } = new(StringComparer.Ordinal);
    }

    private sealed class SeriesData(string instanceId, IReadOnlyList<TelemetryAttribute> attributes)
    {
        public string InstanceId { get; } = instanceId;

        public IReadOnlyList<TelemetryAttribute> Attributes { get; } = attributes;

        public Queue<MetricPointRecord> Points { get; } = new();
    }
}

/// <summary>Points of one instrument from one sender, ready to store.</summary>
/// <param name="Source">Sender.</param>
/// <param name="Meter">Meter (instrumentation scope) name.</param>
/// <param name="Name">Instrument name.</param>
/// <param name="Description">Instrument description.</param>
/// <param name="Unit">UCUM unit.</param>
/// <param name="Kind">Data kind.</param>
/// <param name="IsMonotonic">Monotonic sum (a counter).</param>
/// <param name="Temporality">Delta or cumulative.</param>
/// <param name="Points">Series attributes, point, and explicit bucket bounds (histograms).</param>
public sealed record MetricBatch(
    TelemetrySource Source,
    string Meter,
    string Name,
    string Description,
    string Unit,
    MetricKind Kind,
    bool IsMonotonic,
    MetricTemporality Temporality,
    IReadOnlyList<(IReadOnlyList<TelemetryAttribute> Attributes, MetricPointRecord Point, IReadOnlyList<double>? Bounds)> Points);

/// <summary>A copy of everything stored.</summary>
public sealed record TelemetrySnapshot(
    IReadOnlyList<SpanRecord> Spans,
    IReadOnlyList<LogRecordEntry> Logs,
    IReadOnlyList<InstrumentData> Instruments,
    IReadOnlyDictionary<string, Dictionary<string, IReadOnlyList<TelemetryAttribute>>> SourceAttributes);
