using System.Diagnostics;
using OpenTelemetry.Trace;

namespace Platform.ServiceDefaults.Telemetry;

/// <summary>
/// Drops server spans for probe paths when ASP.NET Core supplies <c>url.path</c> at creation time, and otherwise
/// samples like the SDK default (parent-based, always on). <see cref="ServerSpanMiddleware"/> is the backstop when the
/// path is not visible to the sampler.
/// </summary>
internal sealed class UntracedPathSampler(IReadOnlyCollection<string> untracedPaths) : Sampler
{
    private readonly Sampler _inner = new ParentBasedSampler(new AlwaysOnSampler());

    public override SamplingResult ShouldSample(in SamplingParameters samplingParameters)
    {
        if (samplingParameters.Kind == ActivityKind.Server && samplingParameters.Tags is { } tags)
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "url.path" && tag.Value is string path && IsUntraced(untracedPaths, path))
                {
                    return new SamplingResult(SamplingDecision.Drop);
                }
            }
        }

        return _inner.ShouldSample(samplingParameters);
    }

    internal static bool IsUntraced(IEnumerable<string> untracedPaths, string path)
    {
        foreach (var untraced in untracedPaths)
        {
            if (path.Equals(untraced, StringComparison.OrdinalIgnoreCase)
                || (path.StartsWith(untraced, StringComparison.OrdinalIgnoreCase) && path.Length > untraced.Length && path[untraced.Length] == '/'))
            {
                return true;
            }
        }

        return false;
    }
}
