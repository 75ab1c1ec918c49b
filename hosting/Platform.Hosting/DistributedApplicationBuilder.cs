using System.Diagnostics;
using System.Reflection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Platform.Hosting.ApplicationModel;
using Platform.Hosting.Dashboard;
using Platform.Hosting.Orchestration;
using Platform.Hosting.Publishing;

namespace Platform.Hosting;

/// <summary>The AppHost builder (Aspire's <c>DistributedApplicationBuilder</c>).</summary>
public sealed class DistributedApplicationBuilder : IDistributedApplicationBuilder
{
    /// <summary>Diagnostic events through which the testing builder adjusts an AppHost it starts.</summary>
    internal static readonly DiagnosticListener Diagnostics = new("Platform.Hosting");

    internal const string ConstructingEvent = "DistributedApplicationBuilderConstructing";
    internal const string BuildingEvent = "DistributedApplicationBuilding";

    private readonly HostApplicationBuilder _host;
    private readonly DistributedApplicationOptions _options;

    /// <summary>Creates a builder; <see cref="DistributedApplication.CreateBuilder(string[])"/> is the usual way.</summary>
    public DistributedApplicationBuilder(DistributedApplicationOptions options)
    {
        _options = options;
        if (Diagnostics.IsEnabled(ConstructingEvent))
        {
            Diagnostics.Write(ConstructingEvent, options);
        }

        var assembly = options.AppHostAssembly ?? Assembly.GetEntryAssembly();
        AppHostDirectory = assembly?.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "AppHostProjectPath")?.Value ?? Directory.GetCurrentDirectory();

        _host = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            Args = options.Args,
            ContentRootPath = AppHostDirectory,
            ApplicationName = assembly?.GetName().Name,
            EnvironmentName = System.Environment.GetEnvironmentVariable("DOTNET_ENVIRONMENT") ?? Environments.Development,
        });
        _host.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        _host.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Warning);

        var publisher = _host.Configuration["publisher"];
        var stateDirectory = options.StateDirectory
            ?? _host.Configuration["Platform:StateDirectory"]
            ?? Path.GetFullPath(Path.Combine(AppHostDirectory, "..", ".platform"));
        ExecutionContext = new DistributedApplicationExecutionContext(
            publisher is null ? DistributedApplicationOperation.Run : DistributedApplicationOperation.Publish, stateDirectory, publisher);
        Services.AddSingleton(ExecutionContext);
        Services.AddSingleton<IResourceCollection>(Resources);
        Services.AddSingleton(TimeProvider.System);
    }

    /// <inheritdoc />
    public ConfigurationManager Configuration => _host.Configuration;

    /// <inheritdoc />
    public IHostEnvironment Environment => _host.Environment;

    /// <inheritdoc />
    public IServiceCollection Services => _host.Services;

    /// <inheritdoc />
    public DistributedApplicationExecutionContext ExecutionContext { get; }

    /// <inheritdoc />
    public IResourceCollection Resources { get; } = new ResourceCollection();

    /// <inheritdoc />
    public string AppHostDirectory { get; }

    internal DistributedApplicationOptions Options => _options;

    /// <inheritdoc />
    public IResourceBuilder<T> AddResource<T>(T resource) where T : IResource
    {
        Resources.Add(resource);
        return new ResourceBuilder<T>(this, resource);
    }

    /// <inheritdoc />
    public IResourceBuilder<T> CreateResourceBuilder<T>(T resource) where T : IResource =>
        Resources.Find(resource.Name) is { } existing && ReferenceEquals(existing, resource)
            ? new ResourceBuilder<T>(this, resource)
            : throw new DistributedApplicationException($"Resource '{resource.Name}' is not part of this application.");

    /// <summary>Validates the model and builds the application.</summary>
    public DistributedApplication Build()
    {
        if (Diagnostics.IsEnabled(BuildingEvent))
        {
            Diagnostics.Write(BuildingEvent, this);
        }

        DistributedApplicationModelValidator.Validate(Resources);

        Services.AddSingleton<ResourceNotificationService>();
        Services.AddSingleton(sp => new ResourceLoggerService(sp.GetRequiredService<TimeProvider>()));
        Services.AddSingleton<DistributedApplicationOrchestrator>();
        Services.AddPlatformPublishers();
        Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));

        var dashboardEnabled = ExecutionContext.IsRunMode && !_options.DisableDashboard;
        Services.Configure<DashboardOptions>(Configuration.GetSection("Dashboard"));
        if (Configuration["dashboard-port"] is { } port)
        {
            Services.Configure<DashboardOptions>(o => o.Port = int.Parse(port, System.Globalization.CultureInfo.InvariantCulture));
        }

        Services.Configure<OrchestratorOptions>(o =>
        {
            o.StateDirectory = ExecutionContext.StateDirectory;
            o.EnvironmentName = Environment.EnvironmentName;
            o.RandomizePorts = _options.RandomizePorts;
            o.DisablePersistence = _options.DisablePersistence;
            o.EchoResourceLogs = Configuration.GetValue("Platform:EchoResourceLogs", false);
        });
        if (dashboardEnabled)
        {
            // Also points every project's OTLP exporter at the dashboard's receiver, with a per-run API key.
            Services.AddPlatformDashboard(Configuration.GetSection("Dashboard"), ExecutionContext.StateDirectory);
            if (_options.DisablePersistence)
            {
                Services.Configure<DashboardOptions>(o => o.PersistTelemetry = false);
            }
        }

        return new DistributedApplication(_host.Build(), this, dashboardEnabled);
    }
}
