using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Platform.ServiceDefaults.Shutdown;

/// <summary>How a stopping service drains (configuration section <c>Shutdown</c>).</summary>
public sealed class ShutdownOptions
{
    /// <summary>Configuration section.</summary>
    public const string SectionName = "Shutdown";

    /// <summary>
    /// How long a service that was told to stop keeps serving before its server stops listening. Kubernetes sends SIGTERM
    /// while Services, ingresses and other pods still route to the pod for a few seconds; during this time readiness is
    /// down (<c>/health</c> 503) and every HTTP/1.x response closes its connection, so clients move to other replicas
    /// without a request lost. Requests still running when the server then stops are finished within the host's shutdown
    /// timeout (30 s, Kubernetes' default grace period). Zero stops at once.
    /// </summary>
    public TimeSpan DrainDelay { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>
/// The drain between SIGTERM and the server's stop (<see cref="ShutdownOptions.DrainDelay"/>). Runs in the host's
/// "stopping" phase, before any hosted service (Kestrel among them) stops, so the server keeps accepting and answering
/// meanwhile. It fires <see cref="IHostApplicationLifetime.ApplicationStopping"/> first: after SIGTERM that has happened
/// already, but a host stopped by a call to <c>StopAsync</c> fires it only after this phase, and readiness, the
/// connection closing and the workers' withdrawal all key on it.
/// </summary>
internal sealed partial class ShutdownDrain(
    IHostApplicationLifetime lifetime,
    IOptions<ShutdownOptions> options,
    TimeProvider timeProvider,
    ILogger<ShutdownDrain> logger) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        lifetime.StopApplication();
        var delay = options.Value.DrainDelay;
        if (delay <= TimeSpan.Zero)
        {
            return;
        }

        LogDraining(logger, delay.TotalSeconds);
        try
        {
            await Task.Delay(delay, timeProvider, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The host's shutdown timeout is shorter than the drain: stop now rather than be killed.
            LogDrainCut(logger);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Stopping: readiness is down and connections close after their responses; the server keeps serving for {DrainSeconds} s")]
    private static partial void LogDraining(ILogger logger, double drainSeconds);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "The shutdown timeout ended the drain early")]
    private static partial void LogDrainCut(ILogger logger);
}

/// <summary>Readiness check: unhealthy once the service is stopping, so probes and balancers take it out of rotation.</summary>
internal sealed class ShutdownHealthCheck(IHostApplicationLifetime lifetime) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(lifetime.ApplicationStopping.IsCancellationRequested
            ? HealthCheckResult.Unhealthy("stopping: draining connections")
            : HealthCheckResult.Healthy("serving"));
}

/// <summary>
/// First in every pipeline: while the service stops, HTTP/1.x responses carry <c>Connection: close</c>, so a client's
/// kept-alive connection ends after a whole response instead of being closed under a request it is sending. HTTP/2
/// connections get GOAWAY from Kestrel when it stops, which tells clients which streams to send again.
/// </summary>
internal sealed class ClosingConnectionsStartupFilter(IHostApplicationLifetime lifetime) : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        var stopping = lifetime.ApplicationStopping;
        app.Use((context, nextMiddleware) =>
        {
            if (stopping.IsCancellationRequested && !HttpProtocol.IsHttp2(context.Request.Protocol) && !HttpProtocol.IsHttp3(context.Request.Protocol))
            {
                context.Response.Headers.Connection = "close";
            }

            return nextMiddleware(context);
        });
        next(app);
    };
}
