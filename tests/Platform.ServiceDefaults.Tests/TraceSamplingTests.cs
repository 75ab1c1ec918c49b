using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Trace;
using Platform.TestSupport;

namespace Platform.ServiceDefaults.Tests;

// Every tracer provider in a process hears every activity source: another test's host (sampling everything) running
// at the same time would record this class's requests, so these tests run alone.
[CollectionDefinition(nameof(TraceSamplingTests), DisableParallelization = true)]
public sealed class TraceSamplingCollection;

[Collection(nameof(TraceSamplingTests))]
public sealed class TraceSamplingTests
{
    [Fact]
    public async Task WithRatioZero_NewRequestsAreNotTraced_ButARequestFromASampledTraceIs()
    {
        var ct = TestContext.Current.CancellationToken;
        var exported = new ConcurrentQueue<Activity>();
        await using var host = await TestHost.StartAsync(
            app => app.MapGet("/sampled", () => "ok"),
            new Dictionary<string, string?>
            {
                [OperationRootSampler.SamplerKey] = "parentbased_traceidratio",
                [OperationRootSampler.SamplerArgumentKey] = "0",
            },
            SpanQueue.ExportTo(exported),
            cancellationToken: ct);
        using var client = host.CreateClient();

        for (var i = 0; i < 20; i++)
        {
            await client.GetStringAsync("/sampled", ct);
        }

        // The caller's trace was kept upstream (flag 01): its part in this service is recorded whatever the ratio.
        var upstream = ActivityTraceId.CreateRandom();
        using (var request = new HttpRequestMessage(HttpMethod.Get, "/sampled"))
        {
            request.Headers.Add("traceparent", $"00-{upstream}-{ActivitySpanId.CreateRandom()}-01");
            (await client.SendAsync(request, ct)).EnsureSuccessStatusCode();
        }

        // A server span ends after its response is sent: wait for the one that must come, then look at all that came.
        await Waits.UntilAsync(() => Spans(exported, "/sampled").Any(), TimeSpan.FromSeconds(10), "the sampled request's span", ct);
        Assert.All(Spans(exported, "/sampled"), span => Assert.Equal(upstream, span.TraceId));
        Assert.Single(Spans(exported, "/sampled"));
    }

    [Fact]
    public async Task ByDefault_EveryRequestIsTraced()
    {
        var ct = TestContext.Current.CancellationToken;
        var exported = new ConcurrentQueue<Activity>();
        await using var host = await TestHost.StartAsync(
            app => app.MapGet("/all", () => "ok"),
            configureBuilder: SpanQueue.ExportTo(exported),
            cancellationToken: ct);
        using var client = host.CreateClient();

        for (var i = 0; i < 5; i++)
        {
            await client.GetStringAsync("/all", ct);
        }

        await Waits.UntilAsync(() => Spans(exported, "/all").Count() >= 5, TimeSpan.FromSeconds(10), "five server spans", ct);
        Assert.Equal(5, Spans(exported, "/all").Count());
    }

    [Fact]
    public async Task WithAspiresAlwaysOn_ARequestsClientCallsAreRecorded_ButRootClientCallsAreNot()
    {
        var ct = TestContext.Current.CancellationToken;
        var exported = new ConcurrentQueue<Activity>();
        await using var host = await TestHost.StartAsync(
            app =>
            {
                app.MapGet("/leaf", () => "leaf");
                app.MapGet("/outbound", async (HttpContext context, IHttpClientFactory clients) =>
                {
                    using var client = clients.CreateClient();
                    return await client.GetStringAsync(new Uri($"{context.Request.Scheme}://{context.Request.Host}/leaf"), context.RequestAborted);
                });
            },
            new Dictionary<string, string?> { [OperationRootSampler.SamplerKey] = "always_on" },
            SpanQueue.ExportTo(exported),
            cancellationToken: ct);
        using var client = host.CreateClient();

        Assert.Equal("leaf", await client.GetStringAsync("/outbound", ct));

        await Waits.UntilAsync(() => Spans(exported, "/outbound").Any() && Spans(exported, "/leaf").Any(), TimeSpan.FromSeconds(10), "both server spans", ct);
        var outbound = Assert.Single(Spans(exported, "/outbound"));
        var call = Assert.Single(exported, a => a.Kind == ActivityKind.Client && a.ParentSpanId == outbound.SpanId);
        Assert.Equal(call.SpanId, Assert.Single(Spans(exported, "/leaf")).ParentSpanId);
        // The test's own call to /outbound was a client call outside any operation: not recorded.
        Assert.DoesNotContain(exported, a => a.Kind == ActivityKind.Client && a.ParentSpanId == default);
    }

    [Theory]
    [InlineData(null, null, 1000)]
    [InlineData("parentbased_always_on", null, 1000)]
    [InlineData("ALWAYS_ON", null, 1000)]
    [InlineData("parentbased_always_off", null, 0)]
    [InlineData("always_off", null, 0)]
    [InlineData("parentbased_traceidratio", "0.25", 250)]
    [InlineData("traceidratio", "0.5", 500)]
    [InlineData("traceidratio", null, 1000)]
    public void RootOperations_AreKeptAtTheConfiguredRatio(string? sampler, string? argument, int expectedOfThousand)
    {
        var decide = OperationRootSampler.FromConfiguration(Configuration(sampler, argument));

        var kept = Enumerable.Range(0, 1000).Count(_ => Decide(decide, ActivityKind.Server, default) == SamplingDecision.RecordAndSample);

        // Trace ids are random: a ratio keeps about that share (±6 standard deviations).
        Assert.InRange(kept, expectedOfThousand - 95, expectedOfThousand + 95);
        Assert.True(expectedOfThousand is not (0 or 1000) || kept == expectedOfThousand);
    }

    [Theory]
    [InlineData("parentbased_always_on")]
    [InlineData("always_on")]
    [InlineData("traceidratio")]
    public void RootClientCalls_AreNeverKept(string sampler)
    {
        var decide = OperationRootSampler.FromConfiguration(Configuration(sampler, "1"));

        Assert.Equal(SamplingDecision.Drop, Decide(decide, ActivityKind.Client, default));
        Assert.Equal(SamplingDecision.RecordAndSample, Decide(decide, ActivityKind.Internal, default));
    }

    [Fact]
    public void ParentBased_FollowsTheParentsDecision_OthersDecideAlone()
    {
        var sampledParent = new ActivityContext(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivityTraceFlags.Recorded, isRemote: true);
        var droppedParent = new ActivityContext(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivityTraceFlags.None, isRemote: true);

        var parentBased = OperationRootSampler.FromConfiguration(Configuration("parentbased_traceidratio", "0"));
        Assert.Equal(SamplingDecision.RecordAndSample, Decide(parentBased, ActivityKind.Server, sampledParent));
        Assert.Equal(SamplingDecision.RecordAndSample, Decide(parentBased, ActivityKind.Client, sampledParent));
        Assert.Equal(SamplingDecision.Drop, Decide(parentBased, ActivityKind.Server, droppedParent));

        // always_on (what Aspire's run mode sets): every span of an operation, a client call under a parent included.
        var alone = OperationRootSampler.FromConfiguration(Configuration("always_on", null));
        Assert.Equal(SamplingDecision.RecordAndSample, Decide(alone, ActivityKind.Server, droppedParent));
        Assert.Equal(SamplingDecision.RecordAndSample, Decide(alone, ActivityKind.Client, sampledParent));
        Assert.Equal(SamplingDecision.RecordAndSample, Decide(alone, ActivityKind.Client, droppedParent));
        Assert.Equal(SamplingDecision.Drop, Decide(alone, ActivityKind.Client, default));
    }

    [Theory]
    [InlineData("jaeger_remote", null, OperationRootSampler.SamplerKey)]
    [InlineData("sometimes", null, OperationRootSampler.SamplerKey)]
    [InlineData("traceidratio", "1.5", OperationRootSampler.SamplerArgumentKey)]
    [InlineData("parentbased_traceidratio", "a tenth", OperationRootSampler.SamplerArgumentKey)]
    public void AnUnsupportedSetting_FailsAtStartNamingTheVariable(string sampler, string? argument, string variable)
    {
        var error = Assert.Throws<InvalidOperationException>(() => OperationRootSampler.FromConfiguration(Configuration(sampler, argument)));

        Assert.StartsWith(variable + "=", error.Message, StringComparison.Ordinal);
    }

    private static IEnumerable<Activity> Spans(ConcurrentQueue<Activity> exported, string path) =>
        exported.Where(a => a.Kind == ActivityKind.Server && a.GetTagItem("url.path") as string == path);

    private static IConfiguration Configuration(string? sampler, string? argument) => new ConfigurationBuilder()
        .AddInMemoryCollection(new Dictionary<string, string?>
        {
            [OperationRootSampler.SamplerKey] = sampler,
            [OperationRootSampler.SamplerArgumentKey] = argument,
        })
        .Build();

    private static SamplingDecision Decide(Sampler sampler, ActivityKind kind, ActivityContext parent) =>
        sampler.ShouldSample(new SamplingParameters(parent, ActivityTraceId.CreateRandom(), "operation", kind)).Decision;
}
