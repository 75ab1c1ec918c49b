using Microsoft.Extensions.Configuration;

namespace Platform.ServiceDefaults;

/// <summary>
/// Which metric exporters a service runs, from OpenTelemetry's standard <c>OTEL_METRICS_EXPORTER</c> (a comma-separated
/// list of <c>otlp</c>, <c>prometheus</c>, or <c>none</c>; the .NET SDK does not read it itself). Unset, a service runs
/// both, unlike the specification's default of <c>otlp</c>: OTLP feeds the dashboard and the collector, and the
/// Prometheus scrape feeds the ServiceMonitors, alerts and autoscalers. Each exporter aggregates every measurement on
/// its own, so a deployment whose collector also writes to the same Prometheus sets one of them and saves the other's
/// work and its duplicate series.
/// </summary>
/// <param name="Otlp">Metrics go out over OTLP (when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set).</param>
/// <param name="Prometheus">Metrics are served at <c>/metrics</c> in Prometheus text format.</param>
public sealed record MetricExporters(bool Otlp, bool Prometheus)
{
    /// <summary>The configuration key (an environment variable in practice).</summary>
    public const string Key = "OTEL_METRICS_EXPORTER";

    /// <summary>Reads <see cref="Key"/>; an unknown exporter fails the start with a message naming the key and the value.</summary>
    /// <exception cref="InvalidOperationException">The value names an exporter this service does not offer, or combines <c>none</c> with one.</exception>
    public static MetricExporters FromConfiguration(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var value = configuration[Key];
        if (string.IsNullOrWhiteSpace(value))
        {
            return new MetricExporters(Otlp: true, Prometheus: true);
        }

        bool otlp = false, prometheus = false, none = false;
        foreach (var name in value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            switch (name.ToLowerInvariant())
            {
                case "otlp":
                    otlp = true;
                    break;
                case "prometheus":
                    prometheus = true;
                    break;
                case "none":
                    none = true;
                    break;
                default:
                    throw new InvalidOperationException($"{Key}: '{name}' is not an exporter this service offers (otlp, prometheus or none, comma-separated)");
            }
        }

        if (none && (otlp || prometheus))
        {
            throw new InvalidOperationException($"{Key}: 'none' cannot be combined with another exporter ('{value}')");
        }

        return new MetricExporters(otlp, prometheus);
    }
}
