using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Playwright;
using Platform.TestSupport;
using Platform.OnnxModels;

namespace Platform.Browser.Tests;

/// <summary>The dashboard in headless Chromium against a running platform.</summary>
public sealed class DashboardBrowserTests(PlatformProcessFixture platform)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task WithoutTheTokenTheDashboardAsksToLogIn()
    {
        var context = await platform.Browser.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.GotoAsync(platform.DashboardUrl + "/traces");
        await page.WaitForSelectorAsync("[data-testid=login-form]");
        Assert.Contains("/login", page.Url, StringComparison.Ordinal);
        await page.FillAsync("input[name=token]", "wrong");
        await page.ClickAsync("button[type=submit]");
        await page.WaitForSelectorAsync("[data-testid=login-error]");
        await page.FillAsync("input[name=token]", platform.Token);
        await page.ClickAsync("button[type=submit]");
        await page.WaitForSelectorAsync("[data-testid=traces]");
        Assert.EndsWith("/traces", page.Url, StringComparison.Ordinal);
        await context.CloseAsync();
    }

    [Fact]
    public async Task TokenLoginShowsEveryResourceHealthy()
    {
        var page = await platform.LoggedInPageAsync();
        await page.WaitForSelectorAsync("[data-testid=resource-row]");
        var expected = (await platform.Api().GetFromJsonAsync<JsonElement>("/api/resources", Ct)).EnumerateArray()
            .Where(r => r.GetProperty("type").GetString() != "Parameter").Select(r => r.GetProperty("name").GetString()!).ToList();
        Assert.True(expected.Count >= 7, string.Join(", ", expected));
        foreach (var name in expected)
        {
            var health = page.Locator($"tr[data-resource='{name}'] [data-testid=health]");
            await Assertions.Expect(health).ToHaveTextAsync("Healthy", new() { Timeout = 60_000 });
        }

        await platform.ScreenshotAsync(page, "resources");
        await page.ClickAsync("a[href='/resources/admin-api']");
        await page.WaitForSelectorAsync("text=Environment");
        Assert.Contains("****", await page.InnerTextAsync("main"), StringComparison.Ordinal);
        await platform.ScreenshotAsync(page, "resource-details");
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task AServicesConsoleLinesAppear()
    {
        var page = await platform.LoggedInPageAsync();
        await page.GotoAsync(platform.DashboardUrl + "/console?resource=admin-api");
        await page.WaitForSelectorAsync("[data-testid=console-line]");
        Assert.True(await page.Locator("[data-testid=console-line]").CountAsync() > 0);
        await platform.ScreenshotAsync(page, "console");
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task AnInferencesTraceShowsSpansFromInferenceApiAndModelWorkerInOneWaterfall()
    {
        // A real cross-service request: a model uploaded to and activated in AdminApi's registry, then one inference
        // through InferenceApi, which calls a ModelWorker replica (protobuf over HTTP/2). The test sends no trace
        // context of its own: the trace starts at InferenceApi and reaches the worker only by propagation.
        var model = "trace-mlp-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var features = new MlpClassifierOptions().InputFeatures;
        var onnx = ModelCatalog.Generate("mlp", new ModelRequest { Features = features });
        using var admin = new HttpClient { BaseAddress = await platform.EndpointAsync("admin-api", Ct) };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", platform.AdminKey);
        using var upload = new ByteArrayContent(onnx.Bytes);
        upload.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var uploaded = await admin.PostAsync($"/api/models/{model}/versions", upload, Ct);
        var uploadBody = await uploaded.Content.ReadAsStringAsync(Ct);
        Assert.True(uploaded.IsSuccessStatusCode, $"upload: {(int)uploaded.StatusCode} {uploadBody}");
        var version = JsonDocument.Parse(uploadBody).RootElement.GetProperty("version").GetInt64();
        using var activated = await admin.PostAsync($"/api/models/{model}/versions/{version}/activate", null, Ct);
        Assert.True(activated.IsSuccessStatusCode, $"activate: {(int)activated.StatusCode} {await activated.Content.ReadAsStringAsync(Ct)}");

        // Random inputs, so the response cache cannot answer without a worker.
        var data = string.Join(',', Enumerable.Range(0, features).Select(_ => (Random.Shared.NextSingle() * 2 - 1).ToString("R", CultureInfo.InvariantCulture)));
        var body = $$"""{"inputs":[{"name":"input","datatype":"FP32","shape":[1,{{features}}],"data":[{{data}}]}]}""";
        // Inference needs a tenant key; the tenant's attribution must show up on InferenceApi's span.
        var tenant = await PlatformTenants.CreateAsync(admin, $"browser-{Guid.NewGuid():N}"[..20], [model],
            attribution: new { team = "dashboards", project = "tracing", environment = "test", customer = "customer-7" }, cancellationToken: Ct);
        using var inference = new HttpClient { BaseAddress = await platform.EndpointAsync("inference-api", Ct) }.WithApiKey(tenant.Key);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        var (status, answer) = (0, string.Empty);
        do
        {
            if (status != 0)
            {
                await Task.Delay(250, Ct);
            }

            using var content = new StringContent(body, Encoding.UTF8, "application/json");
            using var response = await inference.PostAsync($"/v2/models/{model}/versions/{version}/infer", content, Ct);
            (status, answer) = ((int)response.StatusCode, await response.Content.ReadAsStringAsync(Ct));
        }
        while (status == 503 && DateTime.UtcNow < deadline); // workers pick activations up asynchronously
        Assert.True(status == 200, $"infer: {status} {answer}");
        Assert.Equal(4, JsonDocument.Parse(answer).RootElement.GetProperty("outputs")[0].GetProperty("data").GetArrayLength());

        // Traces list, filtered in the UI to traces with a model-worker span that mention the model; of those, the one
        // that also has inference-api spans (the worker's batch span starts a trace of its own, linked to the requests').
        var page = await platform.LoggedInPageAsync();
        await page.GotoAsync($"{platform.DashboardUrl}/traces?resource=model-worker&text={model}");
        var row = page.Locator("[data-testid=trace-row]").Filter(new() { HasTextString = "inference-api" }).First;
        try
        {
            await Assertions.Expect(row).ToBeVisibleAsync(new() { Timeout = 30_000 });
        }
        catch (PlaywrightException ex)
        {
            using var diagnostics = platform.Api();
            Assert.Fail($"No trace with both inference-api and model-worker spans for {model}: {ex.Message}\nTraces mentioning it: "
                + await diagnostics.GetStringAsync($"/api/traces?text={model}", Ct));
        }

        await Assertions.Expect(row).ToContainTextAsync("model-worker");
        var traceId = (await row.GetAttributeAsync("data-trace-id"))!;
        await platform.ScreenshotAsync(page, "traces");

        // The waterfall of that one trace.
        await row.ClickAsync();
        await page.WaitForURLAsync($"**/traces/{traceId}");
        await page.WaitForSelectorAsync("[data-testid=waterfall]");
        await Assertions.Expect(page.Locator("[data-testid=span-row][data-resource='inference-api']").First).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("[data-testid=span-row][data-resource='model-worker']").First).ToBeVisibleAsync();
        // The last worker span is the attempt that answered (InferenceApi's resilience may have retried a replica
        // that had not loaded the model yet).
        await page.Locator("[data-testid=span-row][data-resource='model-worker']").Last.ClickAsync();
        await Assertions.Expect(page.Locator("[data-testid=span-details]")).ToContainTextAsync("Server");
        await platform.ScreenshotAsync(page, "trace-waterfall");

        // Propagated, not coincidental: the worker's server span is a child of an inference-api (client) span, and the
        // trace's root is InferenceApi's server span for the infer request.
        using var api = platform.Api();
        var trace = await api.GetFromJsonAsync<JsonElement>($"/api/traces/{traceId}", Ct);
        var spans = trace.GetProperty("spans").EnumerateArray().ToList();
        string Describe() => string.Join("; ", spans.Select(x => $"{x.GetProperty("resource")} {x.GetProperty("kind")} '{x.GetProperty("name")}' {x.GetProperty("spanId")}<-{x.GetProperty("parentSpanId")}"));
        var inferenceSpanIds = spans.Where(x => x.GetProperty("resource").GetString() == "inference-api").Select(x => x.GetProperty("spanId").GetString()).ToHashSet();
        Assert.True(spans.Any(x => x.GetProperty("resource").GetString() == "model-worker" && x.GetProperty("kind").GetString() == "Server"
            && inferenceSpanIds.Contains(x.GetProperty("parentSpanId").GetString())), Describe());
        Assert.Equal("inference-api", trace.GetProperty("summary").GetProperty("rootResource").GetString());

        // GenAI conventions and attribution on InferenceApi's server span (the customer is on spans, never on metrics).
        var server = spans.Single(x => x.GetProperty("resource").GetString() == "inference-api" && x.GetProperty("parentSpanId").GetString() is null or "");
        var attributes = server.GetProperty("attributes").EnumerateArray()
            .ToDictionary(a => a.GetProperty("key").GetString()!, a => a.GetProperty("value").GetString());
        Assert.Equal("inference", attributes.GetValueOrDefault("gen_ai.operation.name"));
        Assert.Equal("platform", attributes.GetValueOrDefault("gen_ai.provider.name"));
        Assert.Equal(model, attributes.GetValueOrDefault("gen_ai.request.model"));
        Assert.Equal(tenant.Name, attributes.GetValueOrDefault("platform.tenant"));
        Assert.Equal("dashboards", attributes.GetValueOrDefault("platform.team"));
        Assert.Equal("customer-7", attributes.GetValueOrDefault("platform.customer"));
        Assert.True(attributes.ContainsKey("platform.cost"), string.Join(", ", attributes.Keys));

        var export = await api.GetFromJsonAsync<JsonElement>($"/api/traces/{traceId}/otlp", Ct);
        var services = export.GetProperty("resourceSpans").EnumerateArray()
            .Select(r => r.GetProperty("resource").GetProperty("attributes").EnumerateArray()
                .Single(a => a.GetProperty("key").GetString() == "service.name").GetProperty("value").GetProperty("stringValue").GetString())
            .ToHashSet();
        Assert.Superset(new HashSet<string?> { "inference-api", "model-worker" }, services);

        await page.GotoAsync(platform.DashboardUrl + "/structuredlogs");
        await page.WaitForSelectorAsync("[data-testid=log-row]");
        await platform.ScreenshotAsync(page, "structured-logs");
        await page.GotoAsync(platform.DashboardUrl + "/metrics?resource=inference-api");
        await page.Locator("[data-testid=instrument]", new() { HasTextString = "http.server.request.duration" }).First.ClickAsync();
        await page.WaitForSelectorAsync("[data-testid=metric-chart]");
        await platform.ScreenshotAsync(page, "metrics");
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task RestartingAWorkerReplicaFromTheUiWorks()
    {
        using var api = platform.Api();
        async Task<JsonElement> InstanceAsync() => (await api.GetFromJsonAsync<JsonElement>("/api/resources", Ct)).EnumerateArray()
            .Single(r => r.GetProperty("name").GetString() == "model-worker").GetProperty("instances").EnumerateArray()
            .Single(i => i.GetProperty("instanceId").GetString() == "model-worker-1");
        var before = await InstanceAsync();
        var pid = before.GetProperty("pid").GetInt32();

        var page = await platform.LoggedInPageAsync();
        await page.WaitForSelectorAsync("[data-testid='restart-model-worker-1']");
        await page.ClickAsync("[data-testid='restart-model-worker-1']");

        var deadline = DateTime.UtcNow.AddSeconds(90);
        JsonElement after;
        do
        {
            await Task.Delay(500, Ct);
            after = await InstanceAsync();
        }
        while (DateTime.UtcNow < deadline && !(after.GetProperty("pid").ValueKind == JsonValueKind.Number && after.GetProperty("pid").GetInt32() != pid
            && after.GetProperty("state").GetString() == "Running" && after.GetProperty("health").GetString() == "Healthy"));

        Assert.NotEqual(pid, after.GetProperty("pid").GetInt32());
        Assert.Equal("Healthy", after.GetProperty("health").GetString());
        await Assertions.Expect(page.Locator("tr[data-resource='model-worker'] [data-testid=health]")).ToHaveTextAsync("Healthy", new() { Timeout = 30_000 });
        await platform.ScreenshotAsync(page, "worker-restarted");
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task StoppingRedisMakesItsDependantsUnhealthyAndStartingItBringsThemBack()
    {
        // Every service checks Redis in /health (Platform.Redis' "redis" check), so all four go Unhealthy with it.
        // In this class, so no other test of the fixture runs while Redis is down.
        string[] dependants = ["admin-api", "inference-api", "model-worker", "context-enrichment"];
        var page = await platform.LoggedInPageAsync();
        await page.WaitForSelectorAsync("[data-testid='stop-redis']");
        foreach (var name in dependants.Append("redis"))
        {
            await Assertions.Expect(page.Locator($"tr[data-resource='{name}'] [data-testid=health]")).ToHaveTextAsync("Healthy", new() { Timeout = 60_000 });
        }

        try
        {
            await page.ClickAsync("[data-testid='stop-redis']");
            await Assertions.Expect(page.Locator("tr[data-resource='redis'] [data-testid=health]")).Not.ToHaveTextAsync("Healthy", new() { Timeout = 30_000 });
            foreach (var name in dependants)
            {
                await Assertions.Expect(page.Locator($"tr[data-resource='{name}'] [data-testid=health]")).ToHaveTextAsync("Unhealthy", new() { Timeout = 30_000 });
            }

            using (var api = platform.Api())
            {
                var adminApi = await api.GetFromJsonAsync<JsonElement>("/api/resources/admin-api", Ct);
                Assert.Contains("/health answered 503", adminApi.ToString(), StringComparison.Ordinal);
            }

            await platform.ScreenshotAsync(page, "redis-stopped");
        }
        finally
        {
            await page.ClickAsync("[data-testid='start-redis']");
        }

        foreach (var name in dependants.Append("redis"))
        {
            await Assertions.Expect(page.Locator($"tr[data-resource='{name}'] [data-testid=health]")).ToHaveTextAsync("Healthy", new() { Timeout = 60_000 });
        }

        await platform.ScreenshotAsync(page, "redis-started");
        await page.Context.CloseAsync();
    }
}
