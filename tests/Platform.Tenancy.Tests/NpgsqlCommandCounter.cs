using System.Diagnostics;

namespace Platform.Tenancy.Tests;

/// <summary>
/// Counts the Npgsql commands whose text contains a given string, run inside one trace: other tests share the server and run in
/// parallel, and Npgsql's own queries (type loading on a new data source) are not the code's.
/// </summary>
public sealed class NpgsqlCommandCounter : IDisposable
{
    private readonly ActivityListener _listener;
    private int _count;

    public NpgsqlCommandCounter(ActivityTraceId trace, string contains)
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "Npgsql",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                if (activity.TraceId == trace && activity.GetTagItem("db.query.text") is string text && text.Contains(contains, StringComparison.Ordinal))
                {
                    Interlocked.Increment(ref _count);
                }
            },
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public int Count => Volatile.Read(ref _count);

    public void Dispose() => _listener.Dispose();
}
