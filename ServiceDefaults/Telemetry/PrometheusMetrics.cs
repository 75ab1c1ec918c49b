using System.Globalization;
using System.Text;
using OpenTelemetry;
using OpenTelemetry.Metrics;

namespace Platform.ServiceDefaults.Telemetry;

/// <summary>
/// <c>GET /metrics</c> in the Prometheus text format, for the ServiceMonitors in <c>manifests/</c>. The
/// OpenTelemetry Prometheus exporter package is not obtainable here, so this is a pull reader over the
/// same MeterProvider that feeds OTLP: each scrape collects cumulative values and formats them.
/// </summary>
public sealed class PrometheusMetrics : IDisposable
{
    private readonly Exporter _exporter = new();
    private readonly Lock _scrapeGate = new();

    /// <summary>Creates the reader (cumulative temporality, as Prometheus expects).</summary>
    public PrometheusMetrics() =>
        Reader = new BaseExportingMetricReader(_exporter) { TemporalityPreference = MetricReaderTemporalityPreference.Cumulative };

    /// <summary>The reader to add to the MeterProvider.</summary>
    public MetricReader Reader { get; }

    /// <summary>Collects and formats every metric now.</summary>
    public string Scrape()
    {
        lock (_scrapeGate)
        {
            _exporter.Text = string.Empty;
            Reader.Collect(timeoutMilliseconds: 5000);
            return _exporter.Text;
        }
    }

    /// <inheritdoc />
    public void Dispose() => Reader.Dispose();

    /// <summary>Prometheus metric name: letters, digits and '_' only.</summary>
    public static string MetricName(string name)
    {
        var chars = name.Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_').ToArray();
        return char.IsAsciiDigit(chars[0]) ? "_" + new string(chars) : new string(chars);
    }

    /// <summary>Prometheus names carry their unit (OpenTelemetry's compatibility rules): s → _seconds, ms → _milliseconds, By → _bytes.</summary>
    public static string UnitSuffix(string name, string? unit)
    {
        var suffix = unit switch
        {
            "s" => "_seconds",
            "ms" => "_milliseconds",
            "us" => "_microseconds",
            "By" => "_bytes",
            _ => string.Empty,
        };
        return suffix.Length > 0 && !MetricName(name).EndsWith(suffix, StringComparison.Ordinal) ? suffix : string.Empty;
    }

    private static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal)
        .Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private static string Labels(ReadOnlyTagCollection tags, string? extraName = null, string? extraValue = null)
    {
        var parts = new List<string>();
        foreach (var tag in tags)
        {
            parts.Add($"{MetricName(tag.Key)}=\"{Escape(Convert.ToString(tag.Value, CultureInfo.InvariantCulture) ?? string.Empty)}\"");
        }

        if (extraName is not null)
        {
            parts.Add($"{extraName}=\"{extraValue}\"");
        }

        return parts.Count == 0 ? string.Empty : "{" + string.Join(',', parts) + "}";
    }

    private static string Number(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf" : double.IsNegativeInfinity(value) ? "-Inf" : value.ToString("R", CultureInfo.InvariantCulture);

    private sealed class Exporter : BaseExporter<Metric>
    {
        public string Text { get; set; } = string.Empty;

        public override ExportResult Export(in Batch<Metric> batch)
        {
            var text = new StringBuilder();
            foreach (var metric in batch)
            {
                var name = MetricName(metric.Name) + UnitSuffix(metric.Name, metric.Unit);
                var (type, suffix) = metric.MetricType switch
                {
                    MetricType.LongSum or MetricType.DoubleSum => ("counter", "_total"),
                    MetricType.Histogram => ("histogram", string.Empty),
                    _ => ("gauge", string.Empty),
                };
                if (!string.IsNullOrEmpty(metric.Description))
                {
                    text.Append("# HELP ").Append(name).Append(suffix).Append(' ').Append(metric.Description.Replace('\n', ' ')).Append('\n');
                }

                text.Append("# TYPE ").Append(name).Append(suffix).Append(' ').Append(type).Append('\n');
                foreach (ref readonly var point in metric.GetMetricPoints())
                {
                    switch (metric.MetricType)
                    {
                        case MetricType.LongSum or MetricType.LongSumNonMonotonic:
                            text.Append(name).Append(suffix).Append(Labels(point.Tags)).Append(' ').Append(point.GetSumLong()).Append('\n');
                            break;
                        case MetricType.DoubleSum or MetricType.DoubleSumNonMonotonic:
                            text.Append(name).Append(suffix).Append(Labels(point.Tags)).Append(' ').Append(Number(point.GetSumDouble())).Append('\n');
                            break;
                        case MetricType.LongGauge:
                            text.Append(name).Append(Labels(point.Tags)).Append(' ').Append(point.GetGaugeLastValueLong()).Append('\n');
                            break;
                        case MetricType.DoubleGauge:
                            text.Append(name).Append(Labels(point.Tags)).Append(' ').Append(Number(point.GetGaugeLastValueDouble())).Append('\n');
                            break;
                        case MetricType.Histogram:
                            long cumulative = 0;
                            foreach (var bucket in point.GetHistogramBuckets())
                            {
                                cumulative += bucket.BucketCount;
                                text.Append(name).Append("_bucket").Append(Labels(point.Tags, "le", Number(bucket.ExplicitBound)))
                                    .Append(' ').Append(cumulative).Append('\n');
                            }

                            text.Append(name).Append("_sum").Append(Labels(point.Tags)).Append(' ').Append(Number(point.GetHistogramSum())).Append('\n');
                            text.Append(name).Append("_count").Append(Labels(point.Tags)).Append(' ').Append(point.GetHistogramCount()).Append('\n');
                            break;
                    }
                }
            }

            Text = text.ToString();
            return ExportResult.Success;
        }
    }
}
