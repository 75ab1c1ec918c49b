using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Configuration;
using OpenTelemetry.Trace;

namespace Platform.ServiceDefaults;

/// <summary>
/// Starts traces only at operations: a span with no parent is recorded unless it is a client call (a database query, a
/// Redis command, an HTTP request) made outside any operation. Background loops (usage flushing, heartbeats, discovery
/// polls) issue several such calls a second per service; recorded, each would be a one-span trace that buries the
/// requests' traces in the dashboard and in the production backend. Background work worth tracing opens an activity of
/// its own (Platform.* sources), and its calls are then recorded under it. The operations that do start a trace are
/// sampled by <paramref name="operations"/>, and so is every span with a parent when this sampler is
/// not wrapped in a parent-based one (Aspire's run mode sets <c>always_on</c>).
/// </summary>
/// <param name="operations">Decides for a root span that is not a client call.</param>
public sealed class OperationRootSampler(Sampler operations) : Sampler
{
    private static readonly SamplingResult Drop = new(SamplingDecision.Drop);

    /// <summary>Environment variable naming the sampler (OpenTelemetry's SDK configuration).</summary>
    public const string SamplerKey = "OTEL_TRACES_SAMPLER";

    /// <summary>Environment variable with the sampler's argument: the ratio of traces kept, for the ratio samplers.</summary>
    public const string SamplerArgumentKey = "OTEL_TRACES_SAMPLER_ARG";

    /// <inheritdoc />
    public override SamplingResult ShouldSample(in SamplingParameters samplingParameters) =>
        // Only a root client call is background noise: under a parent it is part of an operation (and without a
        // parent-based wrapper, e.g. Aspire's run-mode always_on, it still reaches this sampler).
        samplingParameters.Kind == ActivityKind.Client && samplingParameters.ParentContext.TraceId == default
            ? Drop
            : operations.ShouldSample(samplingParameters);

    /// <summary>
    /// The sampler OpenTelemetry's environment variables ask for, with root client calls always left out:
    /// <c>OTEL_TRACES_SAMPLER</c> = <c>parentbased_always_on</c> (the default), <c>parentbased_always_off</c>,
    /// <c>parentbased_traceidratio</c>, <c>always_on</c>, <c>always_off</c> or <c>traceidratio</c>, and for the ratio
    /// samplers <c>OTEL_TRACES_SAMPLER_ARG</c> between 0 and 1 (default 1). Production keeps, say, one trace in ten: a
    /// recorded trace costs every service on its path (spans, the Redis profiler, export), and the ratio decides at the
    /// root, so a kept trace is whole.
    /// </summary>
    /// <exception cref="InvalidOperationException">A sampler name or ratio the platform cannot honour (named in the message).</exception>
    public static Sampler FromConfiguration(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var name = configuration[SamplerKey];
        name = string.IsNullOrWhiteSpace(name) ? "parentbased_always_on" : name.Trim().ToLowerInvariant();
        var parentBased = name.StartsWith("parentbased_", StringComparison.Ordinal);
        Sampler root = (parentBased ? name["parentbased_".Length..] : name) switch
        {
            "always_on" => new AlwaysOnSampler(),
            "always_off" => new AlwaysOffSampler(),
            "traceidratio" => new TraceIdRatioBasedSampler(Ratio(configuration[SamplerArgumentKey])),
            _ => throw new InvalidOperationException(
                $"{SamplerKey}='{configuration[SamplerKey]}' is not supported: use parentbased_always_on, parentbased_always_off, " +
                "parentbased_traceidratio, always_on, always_off or traceidratio"),
        };
        var operations = new OperationRootSampler(root);
        return parentBased ? new ParentBasedSampler(operations) : operations;
    }

    private static double Ratio(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return 1.0;
        }

        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var ratio) && ratio is >= 0 and <= 1
            ? ratio
            : throw new InvalidOperationException($"{SamplerArgumentKey}='{text}' must be a ratio between 0 and 1 (e.g. 0.1 keeps one trace in ten)");
    }
}
