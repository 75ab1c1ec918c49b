using System.Globalization;

namespace Platform.TestSupport;

/// <summary>Reads series out of a Prometheus text scrape (<c>/metrics</c>), matching on the labels a test cares about.</summary>
public static class PrometheusText
{
    /// <summary>
    /// The value of the series <paramref name="name"/> that carries every label in <paramref name="labels"/> (other labels,
    /// such as OpenTelemetry's <c>otel_scope_*</c>, are ignored); null when no such series is in <paramref name="scrape"/>.
    /// </summary>
    public static double? Value(string scrape, string name, params (string Label, string Value)[] labels)
    {
        ArgumentNullException.ThrowIfNull(scrape);
        foreach (var line in scrape.Split('\n'))
        {
            if (!line.StartsWith(name + "{", StringComparison.Ordinal) && !line.StartsWith(name + " ", StringComparison.Ordinal))
            {
                continue;
            }

            var close = line.LastIndexOf('}');
            var labelText = close > 0 ? line[(name.Length + 1)..close] : string.Empty;
            if (labels.All(l => labelText.Contains($"{l.Label}=\"{l.Value}\"", StringComparison.Ordinal)))
            {
                var value = line[(close > 0 ? close + 1 : name.Length)..].Trim().Split(' ')[0];
                return double.Parse(value, CultureInfo.InvariantCulture);
            }
        }

        return null;
    }
}
