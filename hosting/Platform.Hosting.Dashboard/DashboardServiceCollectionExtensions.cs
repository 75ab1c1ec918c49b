using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Platform.Hosting.Orchestration;
using Platform.Hosting.Telemetry;

namespace Platform.Hosting.Dashboard;

/// <summary>Registers the dashboard with an AppHost's services.</summary>
public static class DashboardServiceCollectionExtensions
{
    /// <summary>
    /// Adds the dashboard (UI, API, OTLP receiver, telemetry store) as a hosted service, and points every
    /// project's OTLP exporter at it with this run's API key.
    /// </summary>
    /// <param name="services">The AppHost's services.</param>
    /// <param name="dashboardSection">Configuration section <c>Dashboard</c>: its <c>Telemetry</c> child sets the store bounds
    /// (<see cref="DashboardOptions"/> itself is bound by the caller, before its command-line overrides).</param>
    /// <param name="stateDirectory">Run-mode state directory; telemetry persists under <c>telemetry/</c> in it.</param>
    public static IServiceCollection AddPlatformDashboard(this IServiceCollection services, IConfiguration dashboardSection, string stateDirectory)
    {
        services.PostConfigure<DashboardOptions>(o => o.TelemetryDirectory ??= Path.Combine(stateDirectory, "telemetry"));
        services.Configure<TelemetryStoreOptions>(dashboardSection.GetSection("Telemetry"));
        services.AddSingleton<DashboardEndpoint>();
        services.AddSingleton<DashboardAuth>();
        services.AddSingleton<TelemetryStore>();
        services.AddSingleton<IResourceActions, OrchestratorResourceActions>();
        services.AddSingleton<DashboardServer>();
        services.AddHostedService(sp => sp.GetRequiredService<DashboardServer>());
        services.AddOptions<OrchestratorOptions>().Configure<DashboardEndpoint, DashboardAuth>((o, endpoint, auth) =>
        {
            o.OtlpEndpoint = endpoint.Url;
            o.OtlpHeaders = auth.OtlpHeaders;
        });
        return services;
    }
}
