using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Platform.OnnxModels;
using Platform.TestSupport;
using static Microsoft.Playwright.Assertions;

namespace Platform.Browser.Tests;

/// <summary>The Aspire dashboard of a running platform: login, resources, console logs, and one inference's distributed trace.</summary>
public sealed class DashboardTests(DashboardFixture dashboard) : DashboardTest(dashboard)
{
    [Fact]
    public async Task WithoutTheTokenTheDashboardAsksForItAndTheTokenLogsIn()
    {
        var page = await OpenAsync(loggedIn: false);
        await page.GotoAsync(new Uri(Dashboard.DashboardUrl, "/structuredlogs").ToString());
        await Expect(page).ToHaveURLAsync(new Regex("/login\\?returnUrl=%2Fstructuredlogs$"));
        var token = page.Locator("input[placeholder='Enter token to log in...']");
        var logIn = page.Locator("fluent-button[name=submit-token]");

        // The login form is prerendered: a click before the page's Blazor circuit is connected does nothing, so try again.
        var invalid = page.GetByText("Invalid token. Please try again");
        var deadline = DateTime.UtcNow.AddSeconds(DashboardFixture.ExpectTimeout / 1000);
        do
        {
            await token.FillAsync("not-the-token");
            await logIn.ClickAsync();
        }
        while (!await Visible(invalid) && DateTime.UtcNow < deadline);

        await Expect(invalid).ToBeVisibleAsync();
        await Expect(page).ToHaveURLAsync(new Regex("/login"));

        await token.FillAsync(Dashboard.Platform.BrowserToken);
        await logIn.ClickAsync();
        await Expect(page).ToHaveURLAsync(new Regex("/structuredlogs$"));
        await Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Structured logs" })).ToBeVisibleAsync();
    }

    [Fact]
    public async Task EveryResourceIsRunningAndHealthyInTheResourcesView()
    {
        var page = await OpenAsync();
        (Regex Name, int Count)[] expected =
        [
            (new("^postgres$"), 1), (new("^platformdb$"), 1), (new("^redis$"), 1), (new("^objectstore$"), 1),
            (new("^admin-api$"), 1), (new("^context-enrichment$"), 1), (new("^inference-api$"), 1),
            (new("^model-worker-[a-z0-9]+$"), 2), // one row per replica
        ];
        foreach (var (name, count) in expected)
        {
            var rows = ResourceRows(page, name);
            await Expect(rows).ToHaveCountAsync(count);
            for (var i = 0; i < count; i++)
            {
                await Expect(State(rows.Nth(i))).ToHaveTextAsync("Running", new() { Timeout = 60_000 });
            }
        }

        await Expect(page.Locator("tr.resource-row")).ToHaveCountAsync(expected.Sum(e => e.Count));
    }

    [Fact]
    public async Task AServicesConsoleLogLinesAppear()
    {
        // AdminApi's own lines: Kestrel's on the address DCP gave this very process, and its schema migrations.
        var adminApi = (await Dashboard.Platform.DescribeAsync(cancellationToken: Ct)).Single(r => r.DisplayName == "admin-api");
        var address = adminApi.Environment.GetValueOrDefault("ASPNETCORE_URLS")?.Split(';')[0]
            ?? throw new InvalidOperationException($"admin-api has no ASPNETCORE_URLS: {adminApi}");

        var page = await OpenAsync();
        await page.GotoAsync(new Uri(Dashboard.DashboardUrl, "/consolelogs/resource/admin-api").ToString());
        var lines = page.Locator(".log-line-area .log-content");
        // The view is virtualised and follows the tail: the start-up lines are rendered once it is scrolled to the top.
        await Expect(lines.First).ToBeVisibleAsync();
        await page.Locator(".log-container").EvaluateAsync("e => e.scrollTop = 0");
        await Expect(lines.Filter(new() { HasText = $"Now listening on: {address}" })).ToHaveCountAsync(1);
        await Expect(lines.Filter(new() { HasTextRegex = new Regex("Schema migrations complete") })).ToHaveCountAsync(1);
    }

    [Fact]
    public async Task OneInferencesTraceShowsInferenceApiAndModelWorkerSpansInOneWaterfall()
    {
        // A real cross-service request: a model uploaded to AdminApi's registry and activated, then one inference through
        // InferenceApi, which calls a ModelWorker replica. The test sends no trace context of its own: the trace starts at
        // InferenceApi and reaches the worker only by propagation.
        var model = "trace-mlp-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var features = new MlpClassifierOptions().InputFeatures;
        using var upload = new ByteArrayContent(ModelCatalog.Generate("mlp").Bytes);
        upload.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var uploaded = await Dashboard.Admin.PostAsync($"/api/models/{model}/versions?activate=true", upload, Ct);
        var uploadBody = await uploaded.Content.ReadAsStringAsync(Ct);
        Assert.True(uploaded.StatusCode == HttpStatusCode.Created, $"upload: {(int)uploaded.StatusCode} {uploadBody}");
        var version = JsonDocument.Parse(uploadBody).RootElement.GetProperty("version").GetInt64();

        var tenant = await PlatformTenants.CreateAsync(Dashboard.Admin, $"browser-{Guid.NewGuid():N}"[..20], [model], cancellationToken: Ct);
        using var inference = new HttpClient { BaseAddress = Dashboard.InferenceApi }.WithApiKey(tenant.Key);
        // Random inputs, so no response cache can answer without a worker.
        var data = string.Join(',', Enumerable.Range(0, features).Select(_ => (Random.Shared.NextSingle() * 2 - 1).ToString("R", CultureInfo.InvariantCulture)));
        var body = $$"""{"inputs":[{"name":"input","datatype":"FP32","shape":[1,{{features}}],"data":[{{data}}]}]}""";
        // Workers load an activation asynchronously: until then InferenceApi answers 503.
        var (status, answer) = await Waits.UntilAsync(async () =>
        {
            using var content = new StringContent(body, Encoding.UTF8, "application/json");
            using var response = await inference.PostAsync($"/v2/models/{model}/versions/{version}/infer", content, Ct);
            return (Status: (int)response.StatusCode, Answer: await response.Content.ReadAsStringAsync(Ct));
        }, r => r.Status != 503, TimeSpan.FromSeconds(60), $"{model} v{version} loaded by a worker", Ct);

        Assert.True(status == 200, $"infer: {status} {answer}");

        // The trace of the inference that answered: the one with both services' spans.
        using var telemetry = await Dashboard.TelemetryApiAsync(Ct);
        var trace = await FindTraceAsync(telemetry, model);

        // In the UI: the traces list shows that trace with spans from both resources; its waterfall lists both.
        var page = await OpenAsync();
        await page.GotoAsync(new Uri(Dashboard.DashboardUrl, "/traces").ToString());
        var row = page.Locator("tr").Filter(new() { Has = page.Locator(".trace-id", new() { HasText = trace.Id[..7] }) });
        await Expect(row.Locator(".trace-service-tag").Filter(new() { HasText = "inference-api" })).ToHaveCountAsync(1);
        await Expect(row.Locator(".trace-service-tag").Filter(new() { HasTextRegex = new Regex("model-worker") })).ToHaveCountAsync(1);
        await row.ClickAsync();
        await Expect(page).ToHaveURLAsync(new Regex($"/traces/detail/{trace.Id}"));
        var spanRows = page.Locator("tr").Filter(new() { Has = page.Locator(".resource-name") });
        await Expect(spanRows.Filter(new() { Has = page.Locator(".resource-name", new() { HasTextRegex = new Regex("^inference-api") }) }).First).ToBeVisibleAsync();
        await Expect(spanRows.Filter(new() { Has = page.Locator(".resource-name", new() { HasTextRegex = new Regex("^model-worker") }) }).First).ToBeVisibleAsync();
        // Every span read above is in the waterfall; the request's own Redis call (its admission) is one of them.
        Assert.Contains(trace.Spans, s => s is { Resource: "inference-api", Kind: SpanKind.Client, Name: "EVALSHA" });
        await Expect(spanRows.Nth(trace.Spans.Count - 1)).ToBeVisibleAsync();

        // The worker's server span names an inference-api span as its parent: its details link to it, and following the
        // link shows a span of inference-api.
        var worker = trace.Spans.Single(s => s.Resource.StartsWith("model-worker", StringComparison.Ordinal) && s.Kind == SpanKind.Server);
        var parent = trace.Spans.SingleOrDefault(s => s.SpanId == worker.ParentSpanId);
        Assert.True(parent is { Resource: "inference-api" }, $"the worker's server span's parent is not an inference-api span:\n{trace}");
        await page.GotoAsync(new Uri(Dashboard.DashboardUrl, $"/traces/detail/{trace.Id}?spanId={worker.SpanId}").ToString());
        var title = page.Locator(".pane-details-title");
        await Expect(title).ToContainTextAsync(new Regex("^model-worker"));
        await Expect(title.Locator(".pane-details-subtext")).ToHaveTextAsync(worker.SpanId[..7]);
        await page.Locator(".details-container fluent-button.button-hyperlink", new() { HasText = worker.ParentSpanId }).ClickAsync();
        await Expect(page).ToHaveURLAsync(new Regex($"spanId={parent.SpanId}"));
        await Expect(title).ToContainTextAsync(new Regex("^inference-api"));
        await Expect(title.Locator(".pane-details-subtext")).ToHaveTextAsync(parent.SpanId[..7]);
    }

    private static async Task<bool> Visible(ILocator locator)
    {
        try
        {
            await locator.WaitForAsync(new() { State = WaitForSelectorState.Visible, Timeout = 2_000 });
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private async Task<Trace> FindTraceAsync(HttpClient telemetry, string model)
    {
        // The exporters batch for a second; the dashboard shows what has arrived.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        var seen = "nothing";
        while (true)
        {
            // The search finds the traces with a span that mentions the model; each is then read whole.
            var candidates = Trace.All(await telemetry.GetFromJsonAsync<JsonElement>($"/api/telemetry/traces?resource=inference-api&search={model}", Ct));
            var parsed = new List<Trace>();
            foreach (var candidate in candidates)
            {
                parsed.AddRange(Trace.All(await telemetry.GetFromJsonAsync<JsonElement>($"/api/telemetry/traces/{candidate.Id}", Ct)));
            }

            var found = parsed.FirstOrDefault(t => t.Spans.Any(s => s.Resource.StartsWith("model-worker", StringComparison.Ordinal)));
            if (found is not null)
            {
                // Each service's exporter sends its batch on its own schedule: the trace is whole once its root has arrived
                // and two reads a batch interval apart agree.
                await Task.Delay(1500, Ct);
                var again = Trace.All(await telemetry.GetFromJsonAsync<JsonElement>($"/api/telemetry/traces/{found.Id}", Ct)).Single();
                if (again.Spans.Count == found.Spans.Count && again.Spans.Any(s => s.ParentSpanId.Length == 0))
                {
                    return again;
                }

                continue;
            }

            seen = string.Join("\n", parsed);
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"No trace of an inference of {model} with spans from both inference-api and model-worker. Traces mentioning it:\n{seen}");
            }

            await Task.Delay(500, Ct);
        }
    }

    private enum SpanKind
    {
        Unspecified = 0,
        Internal = 1,
        Server = 2,
        Client = 3,
        Producer = 4,
        Consumer = 5,
    }

    private sealed record Span(string Resource, string SpanId, string ParentSpanId, string Name, SpanKind Kind);

    private sealed record Trace(string Id, IReadOnlyList<Span> Spans)
    {
        /// <summary>The traces in a telemetry API answer (OTLP JSON under <c>data</c>), grouped by trace id.</summary>
        public static IReadOnlyList<Trace> All(JsonElement answer)
        {
            var spans = new List<(string TraceId, Span Span)>();
            if (!answer.TryGetProperty("data", out var data) || !data.TryGetProperty("resourceSpans", out var resourceSpans))
            {
                return [];
            }

            foreach (var resourceSpan in resourceSpans.EnumerateArray())
            {
                var resource = resourceSpan.GetProperty("resource").GetProperty("attributes").EnumerateArray()
                    .Single(a => a.GetProperty("key").GetString() == "service.name").GetProperty("value").GetProperty("stringValue").GetString()!;
                foreach (var scope in resourceSpan.GetProperty("scopeSpans").EnumerateArray())
                {
                    foreach (var span in scope.GetProperty("spans").EnumerateArray())
                    {
                        var kind = span.TryGetProperty("kind", out var k) ? k.ValueKind == JsonValueKind.Number ? (SpanKind)k.GetInt32()
                            : Enum.Parse<SpanKind>(k.GetString()!.Replace("SPAN_KIND_", string.Empty, StringComparison.Ordinal), ignoreCase: true) : SpanKind.Unspecified;
                        spans.Add((span.GetProperty("traceId").GetString()!, new Span(resource, span.GetProperty("spanId").GetString()!,
                            span.TryGetProperty("parentSpanId", out var p) ? p.GetString() ?? string.Empty : string.Empty,
                            span.GetProperty("name").GetString()!, kind)));
                    }
                }
            }

            return [.. spans.GroupBy(s => s.TraceId, StringComparer.Ordinal).Select(g => new Trace(g.Key, [.. g.Select(s => s.Span)]))];
        }

        public override string ToString() =>
            $"trace {Id}:\n  " + string.Join("\n  ", Spans.Select(s => $"{s.Resource} {s.Kind} '{s.Name}' {s.SpanId} <- {s.ParentSpanId}"));
    }
}
