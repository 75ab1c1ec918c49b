using System.Diagnostics;
using OpenTelemetry.Trace;

namespace Platform.ServiceDefaults;

/// <summary>
/// Starts traces only at operations: a span with no parent is recorded unless it is a client call (a database query, a
/// Redis command, an HTTP request) made outside any operation. Background loops (usage flushing, heartbeats, discovery
/// polls) issue several such calls a second per service; recorded, each would be a one-span trace that buries the
/// requests' traces in the dashboard and in the production backend. Background work worth tracing opens an activity of
/// its own (Platform.* sources), and its calls are then recorded under it.
/// </summary>
public sealed class OperationRootSampler : Sampler
{
    private static readonly SamplingResult Record = new(SamplingDecision.RecordAndSample);
    private static readonly SamplingResult Drop = new(SamplingDecision.Drop);

    /// <inheritdoc />
    public override SamplingResult ShouldSample(in SamplingParameters samplingParameters) =>
        samplingParameters.Kind == ActivityKind.Client ? Drop : Record;
}
