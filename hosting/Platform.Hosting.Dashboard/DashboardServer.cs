using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Platform.Hosting.Dashboard;

/// <summary>Serves the dashboard from the AppHost process on its own Kestrel listener.</summary>
public sealed class DashboardServer(
    IOptions<DashboardOptions> options,
    ResourceNotificationService notifications,
    ResourceLoggerService logs) : IHostedService, IAsyncDisposable
{
    private WebApplication? _app;

    /// <summary>The dashboard's base URL once started.</summary>
    public string? Url { get; private set; }

    /// <inheritdoc />
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Parse(options.Value.BindAddress), options.Value.Port));
        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.Converters.Add(new System.Text.Json.Serialization.JsonStringEnumConverter());
        });
        var app = builder.Build();
        MapApi(app);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        _app = app;
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Url = address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal);
    }

    private void MapApi(WebApplication app)
    {
        app.MapGet("/api/resources", () => notifications.GetAll().Select(ResourceDto.From));
        app.MapGet("/api/resources/{name}", (string name) =>
            notifications.TryGet(name) is { } s ? Results.Ok(s) : Results.NotFound(new { error = $"Unknown resource '{name}'." }));
        app.MapGet("/api/resources/{name}/logs", (string name, int? tail) =>
            notifications.TryGet(name) is null
                ? Results.NotFound(new { error = $"Unknown resource '{name}'." })
                : Results.Ok(logs.GetLines(name, tail ?? 500)));
    }

    /// <inheritdoc />
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_app is not null)
        {
            await _app.StopAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.DisposeAsync().ConfigureAwait(false);
        }
    }
}
