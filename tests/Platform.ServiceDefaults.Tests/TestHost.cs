using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Platform.ServiceDefaults.Tests;

/// <summary>A real Kestrel host on 127.0.0.1 with a free port, built like a Platform service.</summary>
internal sealed class TestHost : IAsyncDisposable
{
    private TestHost(WebApplication app, Uri address)
    {
        App = app;
        Address = address;
    }

    public WebApplication App { get; }

    public Uri Address { get; }

    public IServiceProvider Services => App.Services;

    /// <summary>
    /// A client like one outside the platform: it sends no trace context. (This process's tracer providers listen to every
    /// HttpClient in it, and an untraced client call would otherwise propagate an unsampled parent.)
    /// </summary>
    public HttpClient CreateClient() =>
        new(new SocketsHttpHandler { ActivityHeadersPropagator = null }) { BaseAddress = Address };

    public static async Task<TestHost> StartAsync(
        Action<WebApplication> map,
        IDictionary<string, string?>? configuration = null,
        Action<WebApplicationBuilder>? configureBuilder = null,
        bool serviceDefaults = true,
        CancellationToken cancellationToken = default)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing", ApplicationName = "Platform.Tests" });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        // Hosts stop at once unless a test asks for the shutdown drain.
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["Shutdown:DrainDelay"] = "00:00:00" });
        if (configuration is not null)
        {
            builder.Configuration.AddInMemoryCollection(configuration);
        }

        if (serviceDefaults)
        {
            builder.AddServiceDefaults();
        }

        configureBuilder?.Invoke(builder);
        var app = builder.Build();
        if (serviceDefaults)
        {
            app.MapDefaultEndpoints();
        }

        map(app);
        await app.StartAsync(cancellationToken);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new TestHost(app, new Uri(address));
    }

    /// <summary>
    /// An OTLP/HTTP collector that takes every export (<c>POST /v1/{signal}</c>) and notes its path in
    /// <paramref name="received"/>.
    /// </summary>
    public static Task<TestHost> StartCollectorAsync(System.Collections.Concurrent.ConcurrentQueue<string> received, CancellationToken cancellationToken) =>
        StartAsync(
            app => app.MapPost("/v1/{signal}", async (Microsoft.AspNetCore.Http.HttpContext context) =>
            {
                await context.Request.Body.CopyToAsync(Stream.Null, context.RequestAborted);
                received.Enqueue(context.Request.Path);
                return Microsoft.AspNetCore.Http.Results.Ok();
            }),
            serviceDefaults: false,
            cancellationToken: cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
    }
}

/// <summary>Primary handler that answers from a script and counts calls.</summary>
internal sealed class ScriptedHandler(Func<HttpRequestMessage, int, HttpResponseMessage> respond) : HttpMessageHandler
{
    private int _calls;

    public int Calls => Volatile.Read(ref _calls);

    public List<Uri> RequestUris { get; } = [];

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var call = Interlocked.Increment(ref _calls);
        lock (RequestUris)
        {
            RequestUris.Add(request.RequestUri!);
        }

        var response = respond(request, call);
        response.RequestMessage = request;
        return Task.FromResult(response);
    }
}
