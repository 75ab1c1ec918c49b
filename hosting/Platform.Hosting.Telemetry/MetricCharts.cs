namespace Platform.Hosting.Telemetry;

/// <summary>One point of a chart line.</summary>
public sealed record ChartPoint(long TimeUnixNano, double Value);

/// <summary>One line of a chart (one replica and attribute set).</summary>
public sealed record ChartSeries(string Label, string InstanceId, IReadOnlyList<TelemetryAttribute> Attributes, IReadOnlyList<ChartPoint> Points);

/// <summary>
/// Turns stored points into plottable lines: counters as a rate per second, histograms as percentiles,
/// mean or request rate per export interval. Cumulative points are differenced (a drop means the sender
/// restarted, so the new value is the whole interval); delta points are used as they are.
/// </summary>
public static class MetricCharts
{
    /// <summary>The views that make sense for an instrument; the first is the default.</summary>
    public static IReadOnlyList<string> Views(InstrumentSummary instrument) => instrument.Kind switch
    {
        MetricKind.Sum when instrument.IsMonotonic => ["rate", "value"],
        MetricKind.Histogram => ["p95", "p50", "p99", "mean", "rate"],
        MetricKind.ExponentialHistogram or MetricKind.Summary => ["mean", "rate"],
        _ => ["value"],
    };

    /// <summary>Lines for one view (see <see cref="Views"/>), optionally only points after <paramref name="sinceUnixNano"/>.</summary>
    public static IReadOnlyList<ChartSeries> Chart(InstrumentData data, string? view, long sinceUnixNano = 0)
    {
        var views = Views(data.Summary);
        view = view is not null && views.Contains(view) ? view : views[0];
        var result = new List<ChartSeries>(data.Series.Count);
        foreach (var series in data.Series)
        {
            var points = new List<ChartPoint>(series.Points.Count);
            MetricPointRecord? previous = null;
            foreach (var p in series.Points)
            {
                if (view == "value")
                {
                    points.Add(new ChartPoint(p.TimeUnixNano, p.Value));
                    previous = p;
                    continue;
                }

                var (interval, delta) = Delta(data.Summary.Temporality, previous, p);
                previous = p;
                if (interval is null || interval <= 0)
                {
                    continue;
                }

                var seconds = interval.Value / 1e9;
                double? value = view switch
                {
                    "rate" when data.Summary.Kind == MetricKind.Sum => delta.Value / seconds,
                    "rate" => delta.Count / seconds,
                    "mean" => delta.Count == 0 ? null : delta.Value / delta.Count,
                    "p50" => Percentile(data.ExplicitBounds, delta, 0.50),
                    "p95" => Percentile(data.ExplicitBounds, delta, 0.95),
                    "p99" => Percentile(data.ExplicitBounds, delta, 0.99),
                    _ => null,
                };
                if (value is { } v && double.IsFinite(v))
                {
                    points.Add(new ChartPoint(p.TimeUnixNano, v));
                }
            }

            if (sinceUnixNano > 0)
            {
                points.RemoveAll(p => p.TimeUnixNano < sinceUnixNano);
            }

            result.Add(new ChartSeries(Label(series), series.InstanceId, series.Attributes, points));
        }

        return result;
    }

    private static string Label(MetricSeriesData series) =>
        series.Attributes.Count == 0
            ? series.InstanceId
            : $"{series.InstanceId} {string.Join(", ", series.Attributes.Select(a => $"{a.Key}={a.Value}"))}";

    private static (long? Interval, MetricPointRecord Delta) Delta(MetricTemporality temporality, MetricPointRecord? previous, MetricPointRecord current)
    {
        if (temporality == MetricTemporality.Delta)
        {
            var interval = current.StartUnixNano > 0 ? current.TimeUnixNano - current.StartUnixNano : previous is null ? (long?)null : current.TimeUnixNano - previous.TimeUnixNano;
            return (interval, current);
        }

        if (previous is null)
        {
            return (null, current);
        }

        var reset = current.Count < previous.Count || (current.Count == 0 && current.Value < previous.Value)
            || (current.StartUnixNano != 0 && previous.StartUnixNano != 0 && current.StartUnixNano != previous.StartUnixNano);
        if (reset)
        {
            return (current.TimeUnixNano - current.StartUnixNano, current);
        }

        IReadOnlyList<ulong>? buckets = null;
        if (current.BucketCounts is { } cb && previous.BucketCounts is { } pb && cb.Count == pb.Count)
        {
            var diff = new ulong[cb.Count];
            for (var i = 0; i < diff.Length; i++)
            {
                diff[i] = cb[i] >= pb[i] ? cb[i] - pb[i] : cb[i];
            }

            buckets = diff;
        }

        return (current.TimeUnixNano - previous.TimeUnixNano,
            new MetricPointRecord(previous.TimeUnixNano, current.TimeUnixNano, current.Value - previous.Value, current.Count - previous.Count, buckets));
    }

    /// <summary>Estimates a percentile from explicit buckets by linear interpolation inside the bucket that holds it.</summary>
    internal static double? Percentile(IReadOnlyList<double>? bounds, MetricPointRecord delta, double quantile)
    {
        if (bounds is null || delta.BucketCounts is not { } counts || counts.Count != bounds.Count + 1 || delta.Count == 0)
        {
            return null;
        }

        var total = counts.Aggregate(0UL, (a, c) => a + c);
        if (total == 0)
        {
            return null;
        }

        var rank = quantile * total;
        ulong cumulative = 0;
        for (var i = 0; i < counts.Count; i++)
        {
            var previous = cumulative;
            cumulative += counts[i];
            if (cumulative >= rank && counts[i] > 0)
            {
                var lower = i == 0 ? Math.Min(0, bounds[0]) : bounds[i - 1];
                // The overflow bucket has no upper bound: report its lower bound rather than invent one.
                if (i == bounds.Count)
                {
                    return lower;
                }

                var upper = bounds[i];
                return lower + ((upper - lower) * ((rank - previous) / counts[i]));
            }
        }

        return bounds[^1];
    }
}
