using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Platform.ServiceDefaults.Resilience;
using Polly.CircuitBreaker;

namespace Platform.ServiceDefaults.Tests;

public sealed class ResilienceTests
{
    private static (IHost Host, HttpClient Client) Build(
        ScriptedHandler primary,
        Dictionary<string, string?>? settings = null,
        Action<IHttpClientBuilder>? configureClient = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { EnvironmentName = "Testing", DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["services:upstream:http:0"] = "http://127.0.0.1:1",
            ["HttpResilience:RetryBaseDelay"] = "00:00:00.001",
            ["HttpResilience:MaxRetryAttempts"] = "3",
        });
        if (settings is not null)
        {
            builder.Configuration.AddInMemoryCollection(settings);
        }

        builder.AddServiceDefaults();
        var client = builder.Services.AddHttpClient("upstream", c => c.BaseAddress = new Uri("http://upstream"))
            .ConfigurePrimaryHttpMessageHandler(() => primary);
        configureClient?.Invoke(client);
        var host = builder.Build();
        return (host, host.Services.GetRequiredService<IHttpClientFactory>().CreateClient("upstream"));
    }

    private static HttpResponseMessage Status(HttpStatusCode code) => new(code);

    [Fact]
    public async Task Get_On503_IsRetried_UntilSuccess()
    {
        var primary = new ScriptedHandler((_, call) => Status(call < 3 ? HttpStatusCode.ServiceUnavailable : HttpStatusCode.OK));
        var (host, client) = Build(primary);
        using var _ = host;

        using var response = await client.GetAsync("/models", TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(3, primary.Calls);
        Assert.All(primary.RequestUris, u => Assert.Equal("http://127.0.0.1:1/models", u.ToString()));
    }

    [Fact]
    public async Task Get_On503_GivesUpAfterMaxRetries()
    {
        var primary = new ScriptedHandler((_, _) => Status(HttpStatusCode.ServiceUnavailable));
        var (host, client) = Build(primary);
        using var _ = host;

        using var response = await client.GetAsync("/models", TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(4, primary.Calls);
    }

    [Fact]
    public async Task Post_On503_IsNotRetried()
    {
        var primary = new ScriptedHandler((_, _) => Status(HttpStatusCode.ServiceUnavailable));
        var (host, client) = Build(primary);
        using var _ = host;

        using var response = await client.PostAsync("/infer", new StringContent("{}"), TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(1, primary.Calls);
    }

    [Theory]
    [InlineData(HttpStatusCode.BadRequest)]
    [InlineData(HttpStatusCode.NotFound)]
    public async Task Get_OnNonTransientStatus_IsNotRetried(HttpStatusCode status)
    {
        var primary = new ScriptedHandler((_, _) => Status(status));
        var (host, client) = Build(primary);
        using var _ = host;

        using var response = await client.GetAsync("/models", TestContext.Current.CancellationToken);

        Assert.Equal(status, response.StatusCode);
        Assert.Equal(1, primary.Calls);
    }

    [Fact]
    public async Task Get_OnHttpRequestException_IsRetried()
    {
        var primary = new ScriptedHandler((_, call) => call == 1 ? throw new HttpRequestException("connection refused") : Status(HttpStatusCode.OK));
        var (host, client) = Build(primary);
        using var _ = host;

        using var response = await client.GetAsync("/models", TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(2, primary.Calls);
    }

    [Fact]
    public async Task CircuitBreaker_OpensAfterFailures_AndShortCircuitsCalls()
    {
        var primary = new ScriptedHandler((_, _) => Status(HttpStatusCode.InternalServerError));
        var (host, client) = Build(primary, new()
        {
            ["HttpResilience:MaxRetryAttempts"] = "0",
            ["HttpResilience:CircuitBreakerMinimumThroughput"] = "3",
            ["HttpResilience:CircuitBreakerFailureRatio"] = "0.5",
            ["HttpResilience:CircuitBreakerBreakDuration"] = "00:00:30",
        });
        using var _ = host;
        var ct = TestContext.Current.CancellationToken;

        for (var i = 0; i < 3; i++)
        {
            using var failed = await client.GetAsync("/models", ct);
            Assert.Equal(HttpStatusCode.InternalServerError, failed.StatusCode);
        }

        await Assert.ThrowsAsync<BrokenCircuitException>(() => client.GetAsync("/models", ct));
        Assert.Equal(3, primary.Calls);
    }

    [Fact]
    public async Task AttemptTimeout_CancelsSlowAttempt_AndRetries()
    {
        var calls = 0;
        var primary = new SlowFirstHandler(() => Interlocked.Increment(ref calls));
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { EnvironmentName = "Testing", DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["HttpResilience:AttemptTimeout"] = "00:00:00.200",
            ["HttpResilience:RetryBaseDelay"] = "00:00:00.001",
        });
        builder.AddServiceDefaults();
        builder.Services.AddHttpClient("slow").ConfigurePrimaryHttpMessageHandler(() => primary);
        using var host = builder.Build();
        var client = host.Services.GetRequiredService<IHttpClientFactory>().CreateClient("slow");

        using var response = await client.GetAsync("http://127.0.0.1:1/x", TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(2, calls);
    }

    [Fact]
    public async Task NamedClient_CanOptOut()
    {
        var primary = new ScriptedHandler((_, _) => Status(HttpStatusCode.ServiceUnavailable));
        var (host, client) = Build(primary, configureClient: c => c.DisableDefaultResilience());
        using var _ = host;

        using var response = await client.GetAsync("/models", TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(1, primary.Calls);
        Assert.Equal("http://127.0.0.1:1/models", primary.RequestUris.Single().ToString());
    }

    /// <summary>First call hangs until cancelled; later calls succeed.</summary>
    private sealed class SlowFirstHandler(Func<int> count) : HttpMessageHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (count() == 1)
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }

            return new HttpResponseMessage(HttpStatusCode.OK);
        }
    }
}
