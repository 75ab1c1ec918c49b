using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Platform.ServiceDefaults;

/// <summary>How a stopping service flushes its telemetry (configuration section <c>Telemetry</c>).</summary>
public sealed class TelemetryShutdownOptions
{
    /// <summary>Configuration section.</summary>
    public const string SectionName = "Telemetry";

    /// <summary>
    /// How long a stopping service waits for its traces, metrics and logs to reach the collector (all three together).
    /// A collector that answers takes milliseconds; one that is gone or does not answer is not waited for longer.
    /// </summary>
    public TimeSpan ShutdownFlushTimeout { get; set; } = TimeSpan.FromSeconds(2);
}

/// <summary>
/// Flushes and shuts down the OpenTelemetry providers once the host has stopped, within
/// <see cref="TelemetryShutdownOptions.ShutdownFlushTimeout"/>. Left to the service provider's disposal, each provider
/// waits up to 5 s for an exporter that cannot deliver (the dashboard stops before the services under
/// <c>aspire run</c>, a collector can be away during a rollout), one after another: a service took ~10 s to exit. The
/// disposal that follows finds the providers shut down and returns at once.
/// </summary>
internal sealed class TelemetryShutdown(IServiceProvider services, IHostApplicationLifetime lifetime, IOptions<TelemetryShutdownOptions> options)
    : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        // ApplicationStopped: after every hosted service (Kestrel's drain included) has stopped and emitted its last spans.
        lifetime.ApplicationStopped.Register(Flush);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private void Flush()
    {
        var timeout = options.Value.ShutdownFlushTimeout;
        var milliseconds = (int)Math.Clamp(timeout.TotalMilliseconds, 0, int.MaxValue);
        var shutdowns = new List<Task>(3);
        if (services.GetService<TracerProvider>() is { } tracing)
        {
            shutdowns.Add(OnOwnThread(() => tracing.Shutdown(milliseconds)));
        }

        if (services.GetService<MeterProvider>() is { } metrics)
        {
            shutdowns.Add(OnOwnThread(() => metrics.Shutdown(milliseconds)));
        }

        if (services.GetService<LoggerProvider>() is { } logging)
        {
            shutdowns.Add(OnOwnThread(() => logging.Shutdown(milliseconds)));
        }

        // A provider's own shutdown may take twice its timeout (its processor, then its exporter): the wait is what bounds it.
        Task.WaitAll([.. shutdowns], timeout);
    }

    /// <summary>
    /// A shutdown blocks its thread for up to the timeout. On a thread-pool thread it would queue behind whatever holds the
    /// pool while the service stops (other stops' flushes among them); a shutdown not yet begun when the wait ends is then
    /// done by the providers' disposal, which waits 5 s. Four services stopping in one process took 6–7 s that way.
    /// </summary>
    private static Task OnOwnThread(Func<bool> shutdown) =>
        Task.Factory.StartNew(shutdown, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
}
