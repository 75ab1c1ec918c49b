using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Platform.Hosting.Telemetry.Otlp.Collector.Logs;
using Platform.Hosting.Telemetry.Otlp.Collector.Metrics;
using Platform.Hosting.Telemetry.Otlp.Collector.Trace;

namespace Platform.Hosting.Telemetry;

/// <summary>
/// Saves the store as OTLP protobuf export requests (<c>traces.pb</c>, <c>logs.pb</c>, <c>metrics.pb</c>) and loads
/// them back through the normal ingestion path, so telemetry survives an AppHost restart. The files are
/// whole snapshots of a bounded store, so they stay bounded too; each is written to a temporary file and
/// renamed, so a crash mid-save leaves the previous snapshot.
/// </summary>
public sealed class TelemetryPersistence(TelemetryStore store, OtlpConverter converter, string directory, ILogger logger)
{
    private const string TracesFile = "traces.pb";
    private const string LogsFile = "logs.pb";
    private const string MetricsFile = "metrics.pb";
    private long _savedVersion = -1;

    /// <summary>Where the snapshots live.</summary>
    public string Directory => directory;

    /// <summary>Loads a previous snapshot, if any; unreadable files are logged and skipped.</summary>
    public async Task LoadAsync(CancellationToken cancellationToken)
    {
        if (!System.IO.Directory.Exists(directory))
        {
            return;
        }

        var traces = await ReadAsync(TracesFile, ExportTraceServiceRequest.Parser, cancellationToken).ConfigureAwait(false);
        var logs = await ReadAsync(LogsFile, ExportLogsServiceRequest.Parser, cancellationToken).ConfigureAwait(false);
        var metrics = await ReadAsync(MetricsFile, ExportMetricsServiceRequest.Parser, cancellationToken).ConfigureAwait(false);
        var spans = traces is null ? 0 : converter.Ingest(traces, store);
        var records = logs is null ? 0 : converter.Ingest(logs, store);
        var points = metrics is null ? 0 : converter.Ingest(metrics, store).Stored;
        _savedVersion = store.Version;
        logger.LogInformation("Loaded persisted telemetry from {Directory}: {Spans} spans, {Logs} log records, {Points} metric points",
            directory, spans, records, points);
    }

    /// <summary>Writes a snapshot when the store changed since the last one.</summary>
    public async Task SaveAsync(CancellationToken cancellationToken)
    {
        var version = store.Version;
        if (version == Interlocked.Read(ref _savedVersion))
        {
            return;
        }

        var snapshot = store.Snapshot();
        System.IO.Directory.CreateDirectory(directory);
        await WriteAsync(TracesFile, OtlpExport.ToTraceRequest(snapshot.Spans), cancellationToken).ConfigureAwait(false);
        await WriteAsync(LogsFile, OtlpExport.ToLogsRequest(snapshot.Logs), cancellationToken).ConfigureAwait(false);
        await WriteAsync(MetricsFile, OtlpExport.ToMetricsRequest(snapshot.Instruments, snapshot.SourceAttributes), cancellationToken).ConfigureAwait(false);
        Interlocked.Exchange(ref _savedVersion, version);
    }

    private async Task WriteAsync(string name, IMessage message, CancellationToken cancellationToken)
    {
        var path = Path.Combine(directory, name);
        var temp = path + ".tmp";
        await File.WriteAllBytesAsync(temp, message.ToByteArray(), cancellationToken).ConfigureAwait(false);
        File.Move(temp, path, overwrite: true);
    }

    private async Task<T?> ReadAsync<T>(string name, MessageParser<T> parser, CancellationToken cancellationToken) where T : class, IMessage<T>
    {
        var path = Path.Combine(directory, name);
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            return parser.ParseFrom(await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false));
        }
        catch (InvalidProtocolBufferException ex)
        {
            logger.LogWarning(ex, "Ignoring unreadable telemetry snapshot {Path}", path);
            return null;
        }
    }
}
