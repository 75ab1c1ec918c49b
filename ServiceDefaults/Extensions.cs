using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Platform.ServiceDefaults.Health;
using Platform.ServiceDefaults.Resilience;
using Platform.ServiceDefaults.ServiceDiscovery;
using Platform.ServiceDefaults.Telemetry;

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

    /// <summary>Prometheus scrape endpoint.</summary>
    public const string MetricsPath = "/metrics";

    /// <summary>Environment/configuration key whose presence turns on the OTLP exporter.</summary>
    public const string OtlpEndpointKey = "OTEL_EXPORTER_OTLP_ENDPOINT";

    private const string SuppressAspNetCoreOtelDataSwitch = "Microsoft.AspNetCore.Hosting.SuppressActivityOpenTelemetryData";

    /// <summary>Adds OpenTelemetry, default health checks, service discovery and resilience to every HttpClient.</summary>
    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder)
        where TBuilder : IHostApplicationBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.TryAddSingleton(TimeProvider.System);

        builder.ConfigureOpenTelemetry();
        builder.AddDefaultHealthChecks();

        builder.Services.TryAddSingleton<IServiceEndpointResolver, ConfigurationServiceEndpointResolver>();
        builder.Services.TryAddSingleton<HttpResiliencePipelineProvider>();
        builder.Services.ConfigureAll<HttpResilienceOptions>(builder.Configuration.GetSection(HttpResilienceOptions.SectionName).Bind);

        builder.Services.ConfigureHttpClientDefaults(http =>
        {
            // Resilience outside discovery: each retry re-resolves and so moves to the next replica.
            http.AddDefaultResilience();
            http.AddServiceDiscovery();
        });

        return builder;
    }

    /// <summary>
    /// Configures traces, metrics and logs. Exports over OTLP only when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set; the
    /// exporter then reads the standard OTEL_* variables (protocol, headers, batch delays, resource attributes) itself.
    /// </summary>
    public static TBuilder ConfigureOpenTelemetry<TBuilder>(this TBuilder builder)
        where TBuilder : IHostApplicationBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);

        // ASP.NET Core 10 only fills OpenTelemetry tags on its request activity when this is off; it is read when the
        // hosting diagnostics are created, so it must be set before the host is built.
        AppContext.SetSwitch(SuppressAspNetCoreOtelDataSwitch, false);

        builder.Services.AddOptions<PlatformTelemetryOptions>();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IStartupFilter, ServerSpanStartupFilter>());
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, TelemetryStartupService>());

        var applicationName = builder.Environment.ApplicationName;
        var otel = new PlatformOpenTelemetryBuilder(builder.Services)
            .ConfigureResource(resource => resource.AddService(
                serviceName: builder.Configuration["OTEL_SERVICE_NAME"] ?? applicationName,
                serviceVersion: ServiceVersion.Of(Assembly.GetEntryAssembly()),
                // The AppHost names each replica in OTEL_RESOURCE_ATTRIBUTES; a generated id here would override it.
                autoGenerateServiceInstanceId: !(builder.Configuration["OTEL_RESOURCE_ATTRIBUTES"] ?? string.Empty)
                    .Contains("service.instance.id=", StringComparison.Ordinal)))
            .WithTracing(tracing => tracing
                .AddSource("Microsoft.AspNetCore", "System.Net.Http", PlatformTelemetryOptions.ConventionPrefix + "*", applicationName)
                .SetSampler(sp => new UntracedPathSampler([.. sp.GetRequiredService<IOptions<PlatformTelemetryOptions>>().Value.UntracedPaths])))
            .WithMetrics(metrics => metrics
                .AddMeter(
                    "Microsoft.AspNetCore.Hosting",
                    "Microsoft.AspNetCore.Server.Kestrel",
                    "System.Net.Http",
                    "System.Runtime",
                    PlatformTelemetryOptions.ConventionPrefix + "*",
                    applicationName))
            .WithLogging(configureBuilder: null, configureOptions: logging =>
            {
                logging.IncludeFormattedMessage = true;
                logging.IncludeScopes = true;
            });

        // Names registered through PlatformTelemetryOptions are only known once the container exists.
        builder.Services.ConfigureOpenTelemetryTracerProvider((sp, tracing) =>
        {
            var options = sp.GetRequiredService<IOptions<PlatformTelemetryOptions>>().Value;
            if (options.ActivitySources.Count > 0)
            {
                tracing.AddSource([.. options.ActivitySources]);
            }
        });
        builder.Services.ConfigureOpenTelemetryMeterProvider((sp, metrics) =>
        {
            var options = sp.GetRequiredService<IOptions<PlatformTelemetryOptions>>().Value;
            if (options.Meters.Count > 0)
            {
                metrics.AddMeter([.. options.Meters]);
            }
        });

        // Prometheus scrapes /metrics (ServiceMonitors in manifests/); the same meters also go out over OTLP.
        builder.Services.TryAddSingleton<PrometheusMetrics>();
        builder.Services.ConfigureOpenTelemetryMeterProvider((sp, metrics) => metrics.AddReader(sp.GetRequiredService<PrometheusMetrics>().Reader));

        if (!string.IsNullOrWhiteSpace(builder.Configuration[OtlpEndpointKey]))
        {
            otel.UseOtlpExporter();

            // The exporter takes its HttpClient from IHttpClientFactory under these names. Its endpoint is a literal
            // address (possibly a single-label host such as "otel-collector" in Kubernetes, which discovery would
            // reject), and it has its own retry; telemetry must not trip our breakers or log retry warnings about itself.
            foreach (var exporterClient in (string[])["OtlpTraceExporter", "OtlpMetricExporter", "OtlpLogExporter"])
            {
                builder.Services.AddHttpClient(exporterClient).DisableDefaultResilience().DisableServiceDiscovery();
            }
        }

        return builder;
    }

    /// <summary>Adds the <c>self</c> liveness check; dependency checks are added by the libraries that own them.</summary>
    public static TBuilder AddDefaultHealthChecks<TBuilder>(this TBuilder builder)
        where TBuilder : IHostApplicationBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddHealthChecks()
            .AddCheck("self", () => HealthCheckResult.Healthy("process is responsive"), [LiveTag]);
        return builder;
    }

    /// <summary>
    /// Maps <c>/health</c> (readiness: every check) and <c>/alive</c> (liveness: checks tagged "live"), both answering a
    /// JSON report. They are mapped in every environment because the AppHost and Kubernetes probe them.
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
        app.MapGet(MetricsPath, (PrometheusMetrics prometheus) =>
            Results.Text(prometheus.Scrape(), "text/plain; version=0.0.4; charset=utf-8"));
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
