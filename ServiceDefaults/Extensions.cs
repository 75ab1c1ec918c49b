using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Platform.ServiceDefaults;
using Platform.ServiceDefaults.Health;
using Platform.ServiceDefaults.Shutdown;

// Same namespace as Aspire's template so `builder.AddServiceDefaults()` needs no using in Program.cs.
namespace Microsoft.Extensions.Hosting;

/// <summary>Platform service defaults: telemetry, health checks, service discovery and HTTP resilience.</summary>
public static class PlatformServiceDefaultsExtensions
{
    /// <summary>Tag of health checks that decide liveness (<c>/alive</c>); every check decides readiness (<c>/health</c>).</summary>
    public const string LiveTag = "live";

    /// <summary>Readiness endpoint: every registered check.</summary>
    public const string HealthPath = "/health";

    /// <summary>Liveness endpoint: checks tagged <see cref="LiveTag"/>.</summary>
    public const string AlivePath = "/alive";

    /// <summary>Prometheus scrape endpoint (the ServiceMonitors in manifests/ read it).</summary>
    public const string MetricsPath = "/metrics";

    /// <summary>Activity sources and meters named <c>Platform.*</c> (the services' own, including GenAI attribution) are exported.</summary>
    public const string PlatformTelemetryPrefix = "Platform.*";

    /// <summary>Environment/configuration key whose presence turns on the OTLP exporter.</summary>
    public const string OtlpEndpointKey = "OTEL_EXPORTER_OTLP_ENDPOINT";

    /// <summary>Adds OpenTelemetry, the default health checks, service discovery and the standard resilience handler on every HttpClient.</summary>
    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder)
        where TBuilder : IHostApplicationBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.ConfigureOpenTelemetry();
        builder.AddDefaultHealthChecks();
        builder.AddShutdownDrain();

        builder.Services.AddServiceDiscovery();
        builder.Services.ConfigureHttpClientDefaults(http =>
        {
            // Retries only what is safe to repeat: a POST that reached a service may have had its effect.
            http.AddStandardResilienceHandler(options => options.Retry.DisableForUnsafeHttpMethods());
            http.AddServiceDiscovery();
        });
        return builder;
    }

    /// <summary>
    /// Traces, metrics and logs over OpenTelemetry. The resource takes <c>OTEL_SERVICE_NAME</c> and
    /// <c>OTEL_RESOURCE_ATTRIBUTES</c> (the AppHost's <c>service.instance.id</c> per replica); OTLP export is on when
    /// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set and reads the other <c>OTEL_EXPORTER_OTLP_*</c> variables itself.
    /// Npgsql and StackExchange.Redis spans come from the Aspire client integrations the services use. Metrics go out over
    /// OTLP and are served at <c>/metrics</c> unless <c>OTEL_METRICS_EXPORTER</c> picks one (<see cref="MetricExporters"/>).
    /// A stopping service flushes its telemetry for at most <c>Telemetry:ShutdownFlushTimeout</c> (2 s;
    /// <see cref="TelemetryShutdownOptions"/>).
    /// </summary>
    public static TBuilder ConfigureOpenTelemetry<TBuilder>(this TBuilder builder)
        where TBuilder : IHostApplicationBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Logging.AddOpenTelemetry(logging =>
        {
            logging.IncludeFormattedMessage = true;
            logging.IncludeScopes = true;
        });

        // The providers' flush when the service stops, bounded (TelemetryShutdown).
        builder.Services.AddOptions<TelemetryShutdownOptions>().BindConfiguration(TelemetryShutdownOptions.SectionName);
        builder.Services.AddHostedService<TelemetryShutdown>();

        var exporters = MetricExporters.FromConfiguration(builder.Configuration);
        builder.Services.AddSingleton(exporters);
        var applicationName = builder.Environment.ApplicationName;
        var otel = builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(
                serviceName: builder.Configuration["OTEL_SERVICE_NAME"] ?? applicationName,
                serviceVersion: ServiceVersion.Of(Assembly.GetEntryAssembly()),
                // The AppHost names each replica in OTEL_RESOURCE_ATTRIBUTES; a generated id here would override it.
                autoGenerateServiceInstanceId: !(builder.Configuration["OTEL_RESOURCE_ATTRIBUTES"] ?? string.Empty)
                    .Contains("service.instance.id=", StringComparison.Ordinal)))
            .WithMetrics(metrics =>
            {
                metrics
                    .AddAspNetCoreInstrumentation()
                    .AddHttpClientInstrumentation()
                    .AddRuntimeInstrumentation()
                    .AddMeter(PlatformTelemetryPrefix, applicationName);
                if (exporters.Prometheus)
                {
                    // The exporter's default 300 ms response cache serves a scrape taken just before a change to the next
                    // reader; Prometheus scrapes every 15 s anyway, so every scrape reads the live counters.
                    metrics.AddPrometheusExporter(exporter => exporter.ScrapeResponseCacheDurationMilliseconds = 0);
                }
            })
            .WithTracing(tracing => tracing
                .SetSampler(OperationRootSampler.FromConfiguration(builder.Configuration))
                .AddSource(PlatformTelemetryPrefix, applicationName)
                // Probes and scrapes every few seconds would drown the traces that matter.
                .AddAspNetCoreInstrumentation(aspnet => aspnet.Filter = context => !IsProbe(context.Request.Path))
                .AddHttpClientInstrumentation());

        if (!string.IsNullOrWhiteSpace(builder.Configuration[OtlpEndpointKey]))
        {
            if (exporters.Otlp)
            {
                otel.UseOtlpExporter();
            }
            else
            {
                // UseOtlpExporter covers every signal; without metrics each of the other two gets its own exporter (which
                // reads the same OTEL_EXPORTER_OTLP_* settings).
                otel.WithTracing(tracing => tracing.AddOtlpExporter()).WithLogging(logging => logging.AddOtlpExporter());
            }
        }

        return builder;
    }

    /// <summary>
    /// Adds the <c>self</c> liveness check and the <c>shutdown</c> readiness check (unhealthy once the service is stopping);
    /// dependency checks are added by the clients that own them.
    /// </summary>
    public static TBuilder AddDefaultHealthChecks<TBuilder>(this TBuilder builder)
        where TBuilder : IHostApplicationBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddHealthChecks()
            .AddCheck("self", () => HealthCheckResult.Healthy("process is responsive"), [LiveTag])
            .AddCheck<ShutdownHealthCheck>("shutdown");
        return builder;
    }

    /// <summary>
    /// A stopping service keeps serving for <c>Shutdown:DrainDelay</c> (5 s; <see cref="ShutdownOptions"/>) with readiness
    /// down and HTTP/1.x connections closing after each response, then stops its server, which finishes the requests it
    /// is running: a rolling update or scale-down loses no request.
    /// </summary>
    public static TBuilder AddShutdownDrain<TBuilder>(this TBuilder builder)
        where TBuilder : IHostApplicationBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddOptions<ShutdownOptions>().BindConfiguration(ShutdownOptions.SectionName);
        builder.Services.AddHostedService<ShutdownDrain>();
        builder.Services.AddTransient<Microsoft.AspNetCore.Hosting.IStartupFilter, ClosingConnectionsStartupFilter>();
        return builder;
    }

    /// <summary>
    /// Maps <c>/health</c> (readiness: every check), <c>/alive</c> (liveness: checks tagged "live"), both answering a JSON
    /// report, and <c>/metrics</c> (Prometheus text; not when <c>OTEL_METRICS_EXPORTER</c> leaves <c>prometheus</c> out).
    /// Unlike Aspire's template they are mapped in every environment: Kubernetes probes and scrapes them.
    /// </summary>
    public static WebApplication MapDefaultEndpoints(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapHealthChecks(HealthPath, new HealthCheckOptions { ResponseWriter = HealthResponseWriter.WriteAsync });
        app.MapHealthChecks(AlivePath, new HealthCheckOptions
        {
            Predicate = registration => registration.Tags.Contains(LiveTag),
            ResponseWriter = HealthResponseWriter.WriteAsync,
        });
        if (app.Services.GetService<MetricExporters>() is not { Prometheus: false })
        {
            app.MapPrometheusScrapingEndpoint(MetricsPath);
        }

        return app;
    }

    /// <summary>Maps <c>GET /</c> answering the service name and the entry assembly's version.</summary>
    public static IEndpointConventionBuilder MapServiceInfo(this IEndpointRouteBuilder endpoints, string serviceName)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrWhiteSpace(serviceName);
        var info = new ServiceInfo(serviceName, ServiceVersion.Of(Assembly.GetEntryAssembly()));
        return endpoints.MapGet("/", () => Results.Ok(info));
    }

    private static bool IsProbe(PathString path) =>
        path.StartsWithSegments(HealthPath) || path.StartsWithSegments(AlivePath) || path.StartsWithSegments(MetricsPath);
}

/// <summary>Body of <c>GET /</c>.</summary>
/// <param name="Service">Logical service name.</param>
/// <param name="Version">Informational version of the service assembly.</param>
public sealed record ServiceInfo(string Service, string Version);

internal static class ServiceVersion
{
    public static string Of(Assembly? assembly)
    {
        var version = assembly?.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? assembly?.GetName().Version?.ToString()
            ?? "0.0.0";

        // Drop the "+<commit>" source-link suffix: the version is for humans and resource attributes.
        var plus = version.IndexOf('+', StringComparison.Ordinal);
        return plus > 0 ? version[..plus] : version;
    }
}
