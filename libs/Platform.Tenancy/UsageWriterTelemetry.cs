using System.Diagnostics.Metrics;

namespace Platform.Tenancy;

/// <summary>
/// Metrics of the usage pipeline (meter <c>Platform.Tenancy.Usage</c>): how far Postgres lags behind the answered
/// inferences. A backlog that only grows means the writer cannot reach Postgres and Redis is holding every record.
/// </summary>
public sealed class UsageWriterTelemetry
{
    /// <summary>Meter name (collected by ServiceDefaults through the <c>Platform.</c> prefix).</summary>
    public const string MeterName = "Platform.Tenancy.Usage";

    private readonly Counter<long> _written;
    private readonly Counter<long> _rejected;
    private readonly Histogram<double> _lag;
    private long _backlog = -1;

    /// <summary>Creates the instruments on <paramref name="meterFactory"/>'s meter.</summary>
    public UsageWriterTelemetry(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        var meter = meterFactory.Create(MeterName);
        _written = meter.CreateCounter<long>("platform.usage.written", "{record}", "Usage records committed to Postgres.");
        _rejected = meter.CreateCounter<long>("platform.usage.rejected", "{record}", "Buffered entries that were not valid records and were set aside.");
        _lag = meter.CreateHistogram<double>("platform.usage.write.lag", "s", "From the inference to its usage record's commit in Postgres.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600] });
        meter.CreateObservableGauge("platform.usage.backlog", ObserveBacklog, "{record}",
            "Usage records buffered in Redis and not yet in Postgres, as of the writer's last drain.");
    }

    /// <summary>The backlog last measured, or -1 before the first drain.</summary>
    public long Backlog => Interlocked.Read(ref _backlog);

    internal void Committed(IReadOnlyList<UsageRecord> records, DateTimeOffset now)
    {
        _written.Add(records.Count);
        foreach (var record in records)
        {
            _lag.Record(Math.Max(0, (now - record.OccurredAt).TotalSeconds));
        }
    }

    internal void Rejected(int count) => _rejected.Add(count);

    internal void SetBacklog(long backlog) => Interlocked.Exchange(ref _backlog, backlog);

    private IEnumerable<Measurement<long>> ObserveBacklog()
    {
        var backlog = Backlog;
        return backlog < 0 ? [] : [new Measurement<long>(backlog)];
    }
}
