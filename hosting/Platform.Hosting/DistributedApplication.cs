using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Platform.Hosting.ApplicationModel;
using Platform.Hosting.Dashboard;
using Platform.Hosting.Orchestration;
using Platform.Hosting.Publishing;

namespace Platform.Hosting;

/// <summary>A built AppHost: runs the model on this machine or publishes it (Aspire's <c>DistributedApplication</c>).</summary>
public sealed class DistributedApplication : IHost, IAsyncDisposable
{
    private readonly IHost _host;
    private readonly DistributedApplicationBuilder _builder;
    private readonly bool _dashboardEnabled;
    private readonly ILogger _logger;
    private int _stopped;

    internal DistributedApplication(IHost host, DistributedApplicationBuilder builder, bool dashboardEnabled)
    {
        _host = host;
        _builder = builder;
        _dashboardEnabled = dashboardEnabled;
        _logger = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Platform.AppHost");
        ResourceNotifications = host.Services.GetRequiredService<ResourceNotificationService>();
        ResourceLogs = host.Services.GetRequiredService<ResourceLoggerService>();
    }

    /// <summary>Creates the AppHost builder from command-line arguments.</summary>
    public static DistributedApplicationBuilder CreateBuilder(string[] args) => new(new DistributedApplicationOptions { Args = args });

    /// <summary>Creates the AppHost builder with explicit options.</summary>
    public static DistributedApplicationBuilder CreateBuilder(DistributedApplicationOptions options) => new(options);

    /// <inheritdoc />
    public IServiceProvider Services => _host.Services;

    /// <summary>Resource states and waits.</summary>
    public ResourceNotificationService ResourceNotifications { get; }

    /// <summary>Resources' console output.</summary>
    public ResourceLoggerService ResourceLogs { get; }

    /// <summary>The model.</summary>
    public IResourceCollection Resources => _builder.Resources;

    /// <summary>Stop, start and restart single resources (run mode).</summary>
    public DistributedApplicationOrchestrator Orchestrator => Services.GetRequiredService<DistributedApplicationOrchestrator>();

    /// <summary>The dashboard URL, when it is served.</summary>
    public string? DashboardUrl => _dashboardEnabled ? Services.GetRequiredService<DashboardServer>().Url : null;

    /// <summary>Run mode: starts the dashboard and launches every resource (returns before they are healthy).
    /// Publish mode: writes the artefacts.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (_builder.ExecutionContext.IsPublishMode)
        {
            await PublishAsync(cancellationToken).ConfigureAwait(false);
            return;
        }

        await _host.StartAsync(cancellationToken).ConfigureAwait(false);
        await Orchestrator.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops every resource in reverse dependency order, then the dashboard.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1 || _builder.ExecutionContext.IsPublishMode)
        {
            return;
        }

        await Orchestrator.StopAsync(cancellationToken).ConfigureAwait(false);
        await _host.StopAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs until Ctrl+C or SIGTERM (run mode), or publishes and returns (publish mode).</summary>
    public async Task RunAsync(CancellationToken cancellationToken = default)
    {
        if (_builder.ExecutionContext.IsPublishMode)
        {
            await PublishAsync(cancellationToken).ConfigureAwait(false);
            return;
        }

        var started = Stopwatch.StartNew();
        var lifetime = Services.GetRequiredService<IHostApplicationLifetime>();
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lifetime.ApplicationStopping);
        await StartAsync(stopping.Token).ConfigureAwait(false);
        if (_builder.Options.PrintBanner && DashboardUrl is { } url)
        {
            Console.WriteLine($"Dashboard: {url}");
            Console.WriteLine($"Login: {Services.GetRequiredService<DashboardServer>().LoginUrl}");
        }

        try
        {
            await Orchestrator.WaitForAllHealthyAsync(stopping.Token).ConfigureAwait(false);
            var count = Resources.Count(r => r is not ParameterResource);
            Console.WriteLine($"All {count} resources healthy in {started.Elapsed.TotalSeconds:F2} s (start to healthy).");
        }
        catch (DistributedApplicationException ex)
        {
            _logger.LogError("Not every resource became healthy: {Reason} The others keep running; see the dashboard for logs.", ex.Message);
        }
        catch (OperationCanceledException)
        {
        }

        try
        {
            await Task.Delay(Timeout.Infinite, stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        var stopwatch = Stopwatch.StartNew();
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        Console.WriteLine($"Stopped in {stopwatch.Elapsed.TotalSeconds:F2} s.");
    }

    /// <summary>Runs until Ctrl+C or SIGTERM.</summary>
    public void Run() => RunAsync().GetAwaiter().GetResult();

    private async Task PublishAsync(CancellationToken cancellationToken)
    {
        var name = _builder.ExecutionContext.PublisherName!;
        var publishers = Services.GetServices<IDistributedApplicationPublisher>().ToList();
        var publisher = publishers.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
            ?? throw new DistributedApplicationException(
                $"Unknown publisher '{name}'. Available: {string.Join(", ", publishers.Select(p => p.Name))}.");
        var output = _builder.Configuration["output-path"]
            ?? throw new DistributedApplicationException("--output-path is required in publish mode.");
        output = Path.GetFullPath(output);
        await publisher.PublishAsync(new PublishingContext(Resources, output, _builder.AppHostDirectory, _builder.ExecutionContext,
            _builder.Configuration), cancellationToken).ConfigureAwait(false);
        Console.WriteLine($"Published with '{publisher.Name}' to {output}");
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        if (_host is IAsyncDisposable d)
        {
            await d.DisposeAsync().ConfigureAwait(false);
        }
        else
        {
            _host.Dispose();
        }
    }

    /// <inheritdoc />
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();
}
