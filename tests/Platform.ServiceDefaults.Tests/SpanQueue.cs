using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Trace;

namespace Platform.ServiceDefaults.Tests;

/// <summary>
/// Collects the spans a test host's tracer provider records, each as it ends, into a queue a test may read while the
/// provider adds to it (a plain list, as OpenTelemetry's in-memory exporter takes, cannot be read meanwhile).
/// </summary>
internal static class SpanQueue
{
    /// <summary>Configures a host to export every span it records into <paramref name="exported"/>.</summary>
    public static Action<WebApplicationBuilder> ExportTo(ConcurrentQueue<Activity> exported) =>
        b => b.Services.ConfigureOpenTelemetryTracerProvider(t => t.AddProcessor(new SimpleActivityExportProcessor(new QueueExporter(exported))));

    private sealed class QueueExporter(ConcurrentQueue<Activity> queue) : BaseExporter<Activity>
    {
        public override ExportResult Export(in Batch<Activity> batch)
        {
            foreach (var activity in batch)
            {
                queue.Enqueue(activity);
            }

            return ExportResult.Success;
        }
    }
}
