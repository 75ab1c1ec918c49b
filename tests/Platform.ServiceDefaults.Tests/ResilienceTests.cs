using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Http.Resilience;
using Polly.CircuitBreaker;

namespace Platform.ServiceDefaults.Tests;

public sealed class ResilienceTests
{
    /// <summary>
    /// A host with the service defaults and a client "upstream" (resolved through service discovery) over
    /// <paramref name="primary"/>. The defaults' standard handler keeps the package's settings except the retry delay, which
    /// <paramref name="configure"/> may change further. (Handlers added through ConfigureHttpClientDefaults share one
    /// options instance, so the tests configure them all.)
    /// </summary>
    private static (IHost Host, HttpClient Client) Build(
        ScriptedHandler primary,
        Action<HttpStandardResilienceOptions>? configure = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { EnvironmentName = "Testing", DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["services:upstream:http:0"] = "http://127.0.0.1:1" });
        builder.AddServiceDefaults();
        builder.Services.ConfigureAll<HttpStandardResilienceOptions>(options =>
        {
            options.Retry.Delay = TimeSpan.FromMilliseconds(1);
            configure?.Invoke(options);
        });
        builder.Services.AddHttpClient("upstream", c => c.BaseAddress = new Uri("http://upstream"))
            .ConfigurePrimaryHttpMessageHandler(() => primary);
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
        var (host, client) = Build(primary, options =>
        {
            options.Retry.ShouldHandle = _ => ValueTask.FromResult(false);
            options.CircuitBreaker.MinimumThroughput = 3;
            options.CircuitBreaker.FailureRatio = 0.5;
            options.CircuitBreaker.BreakDuration = TimeSpan.FromSeconds(30);
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
        builder.AddServiceDefaults();
        builder.Services.ConfigureAll<HttpStandardResilienceOptions>(options =>
        {
            options.AttemptTimeout.Timeout = TimeSpan.FromMilliseconds(200);
            options.Retry.Delay = TimeSpan.FromMilliseconds(1);
        });
        builder.Services.AddHttpClient("slow").ConfigurePrimaryHttpMessageHandler(() => primary);
        using var slowHost = builder.Build();
        var slow = slowHost.Services.GetRequiredService<IHttpClientFactory>().CreateClient("slow");

        using var response = await slow.GetAsync("http://127.0.0.1:1/x", TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(2, calls);
    }

    [Fact]
    public async Task TotalTimeout_BoundsACallThatNeverAnswers()
    {
        var calls = 0;
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { EnvironmentName = "Testing", DisableDefaults = true });
        builder.AddServiceDefaults();
        builder.Services.ConfigureAll<HttpStandardResilienceOptions>(options =>
        {
            options.TotalRequestTimeout.Timeout = TimeSpan.FromMilliseconds(300);
            options.AttemptTimeout.Timeout = TimeSpan.FromMilliseconds(100);
            options.Retry.Delay = TimeSpan.FromMilliseconds(1);
        });
        builder.Services.AddHttpClient("hang").ConfigurePrimaryHttpMessageHandler(() => new SlowFirstHandler(() => Interlocked.Increment(ref calls) * 0 + 1));
        using var host = builder.Build();
        var client = host.Services.GetRequiredService<IHttpClientFactory>().CreateClient("hang");
        var started = TimeProvider.System.GetTimestamp();

        await Assert.ThrowsAnyAsync<Exception>(() => client.GetAsync("http://127.0.0.1:1/x", TestContext.Current.CancellationToken));

        // Well under the package default (30 s): the per-client budget holds.
        Assert.True(TimeProvider.System.GetElapsedTime(started) < TimeSpan.FromSeconds(5));
        Assert.InRange(calls, 2, 3); // attempts cut at 100 ms and retried until the 300 ms budget ran out
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
