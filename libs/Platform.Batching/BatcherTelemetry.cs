using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Platform.Batching;

/// <summary>
/// Metrics (meter <see cref="MeterName"/>) and traces (source <see cref="ActivitySourceName"/>) of the batchers in a
/// process. One instance per process (DI singleton); every measurement is tagged <c>model</c> and <c>model.version</c>.
/// </summary>
public sealed class BatcherTelemetry : IDisposable
{
    /// <summary>Meter name.</summary>
    public const string MeterName = "Platform.ModelWorker";

    /// <summary>ActivitySource name.</summary>
    public const string ActivitySourceName = "Platform.ModelWorker";

    private readonly Meter _meter;

    /// <summary>Creates the instruments on a meter from <paramref name="meterFactory"/>.</summary>
    public BatcherTelemetry(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        _meter = meterFactory.Create(MeterName);
        ActivitySource = new ActivitySource(ActivitySourceName);
        QueueTime = _meter.CreateHistogram<double>("platform.model.queue.duration", "s", "Time a request waited before its batch started.");
        BatchSize = _meter.CreateHistogram<int>("platform.model.batch.size", "{row}", "Rows (dimension-0 items) per executed batch.");
        BatchRequests = _meter.CreateHistogram<int>("platform.model.batch.requests", "{request}", "Requests per executed batch.");
        ComputeTime = _meter.CreateHistogram<double>("platform.model.compute.duration", "s", "ONNX Runtime run time per batch.");
        QueueDepth = _meter.CreateUpDownCounter<long>("platform.model.queue.depth", "{request}", "Requests waiting to be batched.");
        Inferences = _meter.CreateCounter<long>("platform.model.inferences", "{row}", "Rows inferred; its rate is inferences per second.");
        Rejections = _meter.CreateCounter<long>("platform.model.rejections", "{request}", "Requests not run, by reason (queue_full, deadline, cancelled, stopped, error).");
    }

    /// <summary>Source of the per-batch activities.</summary>
    public ActivitySource ActivitySource { get; }

    internal Histogram<double> QueueTime { get; }

    internal Histogram<int> BatchSize { get; }

    internal Histogram<int> BatchRequests { get; }

    internal Histogram<double> ComputeTime { get; }

    internal UpDownCounter<long> QueueDepth { get; }

    internal Counter<long> Inferences { get; }

    internal Counter<long> Rejections { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        ActivitySource.Dispose();
        _meter.Dispose();
    }
}
