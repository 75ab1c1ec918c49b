using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Platform.ServiceDefaults.Tests;

public sealed class GrpcPortTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task TheGrpcPortSpeaksHttp2OnlyAndEveryOtherPortHttp1Only()
    {
        var (http, grpc) = (FreePort(), FreePort());
        await using var app = await StartAsync($"http://127.0.0.1:{http};http://127.0.0.1:{grpc}", grpc.ToString(System.Globalization.CultureInfo.InvariantCulture), new LogSink());

        Assert.Equal("HTTP/1.1", await GetProtocolAsync(http, HttpVersion.Version11));
        Assert.Equal("HTTP/2", await GetProtocolAsync(grpc, HttpVersion.Version20));
        // h2c to the HTTP/1.1 port fails outright; HTTP/1.1 to the HTTP/2 port gets Kestrel's bare 400.
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => GetProtocolAsync(http, HttpVersion.Version20));
        using var plain = new HttpClient();
        using var refused = await plain.GetAsync($"http://127.0.0.1:{grpc}/protocol", Ct);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
    }

    [Fact]
    public async Task WithoutGrpcPortEveryListenerSpeaksHttp1AndTheServiceSaysSo()
    {
        var (first, second) = (FreePort(), FreePort());
        var logs = new LogSink();
        await using var app = await StartAsync($"http://127.0.0.1:{first};http://127.0.0.1:{second}", null, logs);

        Assert.Equal("HTTP/1.1", await GetProtocolAsync(first, HttpVersion.Version11));
        Assert.Equal("HTTP/1.1", await GetProtocolAsync(second, HttpVersion.Version11));
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => GetProtocolAsync(second, HttpVersion.Version20));
        Assert.Contains(logs.Messages, m => m.Contains("GRPC_PORT is not set: no gRPC listener", StringComparison.Ordinal));
    }

    [Fact]
    public void AGrpcPortThatIsNotAPortIsRefusedAtStart()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["GRPC_PORT"] = "80x" }).Build();
        var error = Assert.Throws<InvalidOperationException>(() => GrpcPortExtensions.GrpcPort(configuration));
        Assert.Equal("GRPC_PORT '80x' is not a port number (1-65535).", error.Message);
    }

    private static async Task<WebApplication> StartAsync(string urls, string? grpcPort, LogSink logs)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing", ApplicationName = "Platform.Tests" });
        builder.WebHost.UseUrls(urls);
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(logs);
        if (grpcPort is not null)
        {
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["GRPC_PORT"] = grpcPort });
        }

        builder.UseGrpcPort();
        var app = builder.Build();
        app.MapGet("/protocol", (HttpContext context) => context.Request.Protocol);
        await app.StartAsync(Ct);
        return app;
    }

    private static async Task<string> GetProtocolAsync(int port, Version version)
    {
        using var client = new HttpClient { DefaultRequestVersion = version, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using var response = await client.GetAsync($"http://127.0.0.1:{port}/protocol", Ct);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadAsStringAsync(Ct);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private sealed class LogSink : ILoggerProvider
    {
        public List<string> Messages { get; } = [];

        public ILogger CreateLogger(string categoryName) => new Logger(this);

        public void Dispose()
        {
        }

        private sealed class Logger(LogSink sink) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                lock (sink.Messages)
                {
                    sink.Messages.Add(formatter(state, exception));
                }
            }
        }
    }
}
