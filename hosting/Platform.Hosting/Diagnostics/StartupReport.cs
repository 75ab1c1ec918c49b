using System.Diagnostics;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Platform.Hosting;

/// <summary>Logs, once, how long the platform took from the AppHost's start until every resource was Running and Healthy.</summary>
public static class StartupReportExtensions
{
    /// <summary>Adds the start-up report (run mode only).</summary>
    public static IDistributedApplicationBuilder AddStartupReport(this IDistributedApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (builder.ExecutionContext.IsRunMode)
        {
            builder.Services.AddHostedService<StartupReport>();
        }

        return builder;
    }
}

/// <summary>Measures start → all healthy from the process start time, so it includes building the model and launching DCP.</summary>
internal sealed class StartupReport(
    ResourceNotificationService notifications,
    DistributedApplicationModel model,
    TimeProvider timeProvider,
    ILogger<StartupReport> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var started = Process.GetCurrentProcess().StartTime.ToUniversalTime();
        try
        {
            await notifications.WaitForAllHealthyAsync(model, stoppingToken).ConfigureAwait(false);
            var elapsed = timeProvider.GetUtcNow().UtcDateTime - started;
            logger.LogInformation("Platform is up: {Count} resources Running and Healthy {Seconds:F1} s after start",
                ResourceHealth.ExpectedInstances(model).Values.Sum(), elapsed.TotalSeconds);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (DistributedApplicationException ex)
        {
            logger.LogError("Platform did not come up: {Reason}", ex.Message);
        }
    }
}
