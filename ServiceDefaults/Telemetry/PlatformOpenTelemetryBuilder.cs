using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;

namespace Platform.ServiceDefaults.Telemetry;

/// <summary>
/// Our stand-in for OpenTelemetry.Extensions.Hosting's builder (that package does not restore here).
/// The SDK's own WithTracing/WithMetrics/WithLogging/UseOtlpExporter extensions only need the service collection.
/// </summary>
internal sealed class PlatformOpenTelemetryBuilder(IServiceCollection services) : IOpenTelemetryBuilder
{
    /// <inheritdoc />
    public IServiceCollection Services { get; } = services;
}
