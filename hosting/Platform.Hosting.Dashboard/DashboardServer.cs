using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Platform.Hosting.Telemetry;

namespace Platform.Hosting.Dashboard;

/// <summary>
/// Serves the dashboard from the AppHost process on its own Kestrel listener: the browser UI, the JSON API
/// under <c>/api</c> and the OTLP/HTTP receiver under <c>/v1</c>. Everything needs the session cookie, the
/// bearer token or (for <c>/v1</c>) the OTLP API key.
/// </summary>
public sealed class DashboardServer : IHostedService, IAsyncDisposable
{
    private readonly DashboardOptions _options;
    private readonly DashboardEndpoint _endpoint;
    private readonly DashboardAuth _auth;
    private readonly DashboardApi _api;
    private readonly OtlpReceiver _receiver;
    private readonly TelemetryPersistence? _persistence;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private WebApplication? _app;
    private Task? _persistLoop;

    /// <summary>Creates the server (nothing is bound until <see cref="StartAsync"/>).</summary>
    public DashboardServer(
        IOptions<DashboardOptions> options,
        DashboardEndpoint endpoint,
        DashboardAuth auth,
        ResourceNotificationService notifications,
        ResourceLoggerService logs,
        IResourceActions actions,
        TelemetryStore store,
        ILoggerFactory loggerFactory,
        TimeProvider timeProvider)
    {
        _options = options.Value;
        _endpoint = endpoint;
        _auth = auth;
        _logger = loggerFactory.CreateLogger("Platform.Hosting.Dashboard");
        var converter = new OtlpConverter(store.Options);
        _api = new DashboardApi(notifications, logs, actions, store, timeProvider, _stopping.Token);
        _receiver = new OtlpReceiver(store, converter, _options.MaxOtlpRequestBytes, _logger);
        if (_options.PersistTelemetry && _options.TelemetryDirectory is { } directory)
        {
            _persistence = new TelemetryPersistence(store, converter, directory, _logger);
        }
    }

    /// <summary>The dashboard's base URL (known before start: services get it as their OTLP endpoint).</summary>
    public string Url => _endpoint.Url;

    /// <summary>The URL that logs a browser in.</summary>
    public string LoginUrl => $"{_endpoint.Url}/login?t={Uri.EscapeDataString(_auth.BrowserToken)}";

    /// <inheritdoc />
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (_persistence is not null)
        {
            try
            {
                await _persistence.LoadAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (IOException ex)
            {
                _logger.LogWarning(ex, "Could not load persisted telemetry from {Directory}", _persistence.Directory);
            }
        }

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(_endpoint.Address, _endpoint.Port);
            k.Limits.MaxRequestBodySize = _options.MaxOtlpRequestBytes;
        });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(2));
        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.Converters.Add(new System.Text.Json.Serialization.JsonStringEnumConverter());
        });
        var app = builder.Build();
        app.Use(AuthorizeAsync);
        DashboardPages.Map(app, _auth);
        _api.Map(app);
        _receiver.Map(app);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        _app = app;
        if (_persistence is not null)
        {
            _persistLoop = PersistLoopAsync(_stopping.Token);
        }
    }

    private async Task AuthorizeAsync(HttpContext context, RequestDelegate next)
    {
        var path = context.Request.Path;
        if (path.StartsWithSegments("/v1"))
        {
            // OTLP senders authenticate with the API key only; the browser token must not open the receiver.
            if (!_auth.IsOtlpApiKey(context.Request.Headers[DashboardAuth.OtlpApiKeyHeader]))
            {
                context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                return;
            }

            await next(context).ConfigureAwait(false);
            return;
        }

        if (path.StartsWithSegments("/login") || IsAuthenticated(context))
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        if (path.StartsWithSegments("/api"))
        {
            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            context.Response.Headers.WWWAuthenticate = "Bearer";
            await context.Response.WriteAsJsonAsync(new { error = "Log in with the token the AppHost printed (/login?t=…) or send Authorization: Bearer <token>." },
                context.RequestAborted).ConfigureAwait(false);
            return;
        }

        var returnUrl = path + context.Request.QueryString;
        context.Response.Redirect($"/login?returnUrl={Uri.EscapeDataString(returnUrl)}");
    }

    private bool IsAuthenticated(HttpContext context)
    {
        if (_auth.IsSession(context.Request.Cookies[DashboardAuth.CookieName]))
        {
            return true;
        }

        var header = context.Request.Headers.Authorization.ToString();
        return header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && _auth.IsBrowserToken(header["Bearer ".Length..].Trim());
    }

    private async Task PersistLoopAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.PersistInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                await SaveAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task SaveAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _persistence!.SaveAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _logger.LogWarning(ex, "Could not save telemetry to {Directory}", _persistence!.Directory);
        }
    }

    /// <inheritdoc />
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // Ends live streams first so Kestrel does not wait for them to drain.
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_persistLoop is not null)
        {
            await _persistLoop.ConfigureAwait(false);
        }

        if (_app is not null)
        {
            await _app.StopAsync(cancellationToken).ConfigureAwait(false);
        }

        if (_persistence is not null)
        {
            await SaveAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.DisposeAsync().ConfigureAwait(false);
            _app = null;
        }

        _stopping.Dispose();
    }
}
