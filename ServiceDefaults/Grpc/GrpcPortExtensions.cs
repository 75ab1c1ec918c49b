using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

// Same namespace as AddServiceDefaults so Program.cs needs no using.
namespace Microsoft.Extensions.Hosting;

/// <summary>
/// The platform's endpoint convention for services that serve gRPC: besides its HTTP endpoint a service has a second
/// endpoint named <c>grpc</c>, whose port arrives in configuration <c>GRPC_PORT</c> (an environment variable), while
/// <c>ASPNETCORE_URLS</c> (or <c>HTTP_PORTS</c>) lists both ports. The listener on <c>GRPC_PORT</c> speaks HTTP/2 only
/// (cleartext gRPC needs prior knowledge: without TLS there is no ALPN to agree on HTTP/2); every other listener speaks
/// HTTP/1.1 (health probes, metrics scrapers, browsers, JSON clients).
/// </summary>
public static class GrpcPortExtensions
{
    /// <summary>Configuration key (environment variable) carrying the gRPC endpoint's port.</summary>
    public const string GrpcPortKey = "GRPC_PORT";

    /// <summary>
    /// Applies the convention to Kestrel: the listener whose port equals <c>GRPC_PORT</c> gets
    /// <see cref="HttpProtocols.Http2"/>, every other listener <see cref="HttpProtocols.Http1"/>. Without
    /// <c>GRPC_PORT</c> there is no gRPC listener (every listener is HTTP/1.1), which the service logs at start.
    /// </summary>
    /// <exception cref="InvalidOperationException"><c>GRPC_PORT</c> is set but not a port number.</exception>
    public static WebApplicationBuilder UseGrpcPort(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var port = GrpcPort(builder.Configuration);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.ConfigureEndpointDefaults(listen =>
            listen.Protocols = port is not null && listen.IPEndPoint?.Port == port ? HttpProtocols.Http2 : HttpProtocols.Http1));
        builder.Services.AddHostedService(services => new GrpcPortReport(port, services.GetRequiredService<ILoggerFactory>()));
        return builder;
    }

    /// <summary>The configured gRPC port, or null when <c>GRPC_PORT</c> is unset.</summary>
    /// <exception cref="InvalidOperationException">The value is not a port number.</exception>
    public static int? GrpcPort(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var value = configuration[GrpcPortKey];
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }

        return int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is > 0 and <= 65535
            ? port
            : throw new InvalidOperationException($"{GrpcPortKey} '{value}' is not a port number (1-65535).");
    }
}

/// <summary>Says at start which port serves gRPC, or that none does.</summary>
internal sealed partial class GrpcPortReport(int? port, ILoggerFactory loggers) : IHostedService
{
    private readonly ILogger _logger = loggers.CreateLogger("Platform.ServiceDefaults.Grpc");

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (port is { } grpc)
        {
            LogGrpcPort(_logger, grpc);
        }
        else
        {
            LogNoGrpcPort(_logger);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 30, Level = LogLevel.Information, Message = "gRPC (HTTP/2 only) on port {Port} (GRPC_PORT); every other listener serves HTTP/1.1")]
    private static partial void LogGrpcPort(ILogger logger, int port);

    [LoggerMessage(EventId = 31, Level = LogLevel.Warning, Message = "GRPC_PORT is not set: no gRPC listener, every listener serves HTTP/1.1")]
    private static partial void LogNoGrpcPort(ILogger logger);
}
