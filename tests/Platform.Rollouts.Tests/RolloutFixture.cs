using Aspire.Hosting;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Npgsql;
using Platform.OnnxModels;
using Platform.TestSupport;

[assembly: AssemblyFixture(typeof(Platform.Rollouts.Tests.RolloutFixture))]
// One test restarts AdminApi: the others must not be mid-call then.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Platform.Rollouts.Tests;

/// <summary>An inference's outcome as the client saw it.</summary>
/// <param name="Status">HTTP status.</param>
/// <param name="ModelVersion">The response's <c>model_version</c> (0 when it failed).</param>
/// <param name="Body">The response body.</param>
public sealed record InferOutcome(int Status, long ModelVersion, string Body);

/// <summary>
/// One running platform for the suite (its own: the tests restart AdminApi), an admin client, a tenant's inference client
/// and direct Postgres access for the usage records.
/// </summary>
public sealed class RolloutFixture : IAsyncLifetime
{
    public const string AdminKey = "rollout-tests-admin-key";

    /// <summary>Warm-up runs the workers give every version in this suite.</summary>
    public const int WarmUpRuns = 2000;

    /// <summary>Features of the test models' input.</summary>
    public const int Features = 16;

    public PlatformApp App { get; private set; } = null!;

    public HttpClient Admin { get; private set; } = null!;

    public HttpClient Inference { get; private set; } = null!;

    public TestTenant Tenant { get; private set; } = null!;

    public NpgsqlDataSource Database { get; private set; } = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        // Every version is warmed up with WarmUpRuns runs before a worker reports it Ready (WarmupTests checks the count).
        App = await PlatformApp.StartAsync([$"--Parameters:admin-api-key={AdminKey}"], builder =>
            builder.Project("model-worker").WithEnvironment("ModelWorker__WarmUpRuns", WarmUpRuns.ToString(CultureInfo.InvariantCulture)));
        Admin = App.CreateHttpClient("admin-api");
        Admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        Tenant = await PlatformTenants.CreateAsync(Admin, "rollout-tests");
        Inference = App.CreateHttpClient("inference-api").WithApiKey(Tenant.Key);
        Database = NpgsqlDataSource.Create(await App.GetConnectionStringAsync("platformdb"));
    }

    public async ValueTask DisposeAsync()
    {
        Admin?.Dispose();
        Inference?.Dispose();
        if (Database is not null)
        {
            await Database.DisposeAsync();
        }

        if (App is not null)
        {
            await App.DisposeAsync();
        }
    }

    /// <summary>
    /// A new model with two active versions of the same signature, both loaded on the workers: MLPs with different weights,
    /// or with <paramref name="failingCandidate"/> a version 2 whose every inference fails in ONNX Runtime.
    /// </summary>
    public async Task<string> CreateModelWithTwoVersionsAsync(string prefix, bool failingCandidate = false)
    {
        var name = $"{prefix}-{Guid.NewGuid():N}"[..32];
        foreach (var seed in new ulong[] { 1, 2 })
        {
            var bytes = seed == 2 && failingCandidate ? FailingModel() : ModelCatalog.Generate("mlp", new ModelRequest { Seed = seed, Features = Features }).Bytes;
            using var content = new ByteArrayContent(bytes);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            using var response = await Admin.PostAsync($"/api/models/{name}/versions?activate=true", content, Ct);
            Assert.True(response.IsSuccessStatusCode, $"upload {name}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(Ct)}");
        }

        foreach (var version in new long[] { 1, 2 })
        {
            // Loaded once the workers stop answering "not loaded" (503); the failing version then answers 500.
            var expected = version == 2 && failingCandidate ? 500 : 200;
            await EventuallyAsync($"{name} v{version} served", async () => (await InferAsync(name, version)).Status == expected);
        }

        return name;
    }

    /// <summary>
    /// The MLP's signature (input float[batch,16] → probabilities float[batch,4]) over a Reshape to [35, -1], which
    /// ONNX Runtime accepts at load time and refuses at run time for any batch that is not a multiple of 35 rows.
    /// </summary>
    private static byte[] FailingModel()
    {
        var graph = new OnnxGraphBuilder("failing");
        graph.AddInput("input", OnnxDataType.Float, "batch", Features);
        graph.AddInitializer("shape", [35L, -1L], 2);
        graph.AddNode("Reshape", ["input", "shape"], ["probabilities"]);
        graph.AddOutput("probabilities", OnnxDataType.Float, "batch", 4);
        return graph.ToBytes("fails at run time");
    }

    /// <summary>Sends unversioned inferences, <paramref name="parallel"/> at a time, until <paramref name="cancellationToken"/> fires.</summary>
    public async Task<List<(DateTimeOffset Sent, InferOutcome Outcome)>> DriveTrafficAsync(string model, int parallel, CancellationToken cancellationToken)
    {
        var outcomes = new List<(DateTimeOffset, InferOutcome)>();
        await Task.WhenAll(Enumerable.Range(0, parallel).Select(async _ =>
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var sent = DateTimeOffset.UtcNow;
                try
                {
                    var outcome = await InferAsync(model, cancellationToken: cancellationToken);
                    lock (outcomes)
                    {
                        outcomes.Add((sent, outcome));
                    }
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return;
                }
            }
        }));
        return outcomes;
    }

    /// <summary>One inference of a fixed input, unversioned unless <paramref name="version"/> is given.</summary>
    public async Task<InferOutcome> InferAsync(string model, long? version = null, string? id = null, string? entityId = null, CancellationToken cancellationToken = default)
    {
        var body = new Dictionary<string, object?>
        {
            ["inputs"] = new[]
            {
                new { name = "input", shape = new[] { 1, Features }, datatype = "FP32", data = Enumerable.Range(0, Features).Select(i => i / 10f).ToArray() },
            },
        };
        if (id is not null)
        {
            body["id"] = id;
        }

        if (entityId is not null)
        {
            body["parameters"] = new Dictionary<string, object> { ["entity_id"] = entityId };
        }

        var path = version is null ? $"/v2/models/{model}/infer" : $"/v2/models/{model}/versions/{version}/infer";
        using var content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");
        using var response = await Inference.PostAsync(path, content, cancellationToken == default ? Ct : cancellationToken);
        var text = await response.Content.ReadAsStringAsync(cancellationToken == default ? Ct : cancellationToken);
        var answered = response.IsSuccessStatusCode
            ? long.Parse(JsonDocument.Parse(text).RootElement.GetProperty("model_version").GetString()!, CultureInfo.InvariantCulture)
            : 0;
        return new InferOutcome((int)response.StatusCode, answered, text);
    }

    /// <summary>Sends an admin request with a JSON body (a string is sent as is).</summary>
    public async Task<(int Status, JsonElement Body)> AdminAsync(HttpMethod method, string path, object? body = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = new StringContent(body as string ?? JsonSerializer.Serialize(body, JsonSerializerOptions.Web), Encoding.UTF8, "application/json");
        }

        using var response = await Admin.SendAsync(request, Ct);
        var text = await response.Content.ReadAsStringAsync(Ct);
        return ((int)response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    /// <summary>Starts a rollout and asserts it was created.</summary>
    public async Task<JsonElement> StartRolloutAsync(string model, object body)
    {
        var (status, created) = await AdminAsync(HttpMethod.Put, $"/api/models/{model}/rollout", body);
        Assert.True(status == 201, $"PUT rollout: {status} {created}");
        return created;
    }

    /// <summary>Polls <paramref name="condition"/> until it holds; fails after <paramref name="timeout"/> (default 60 s: the machine is shared).</summary>
    public static Task EventuallyAsync(string what, Func<Task<bool>> condition, TimeSpan? timeout = null) =>
        Waits.UntilAsync(condition, timeout ?? TimeSpan.FromSeconds(60), what, Ct);

    /// <summary>Runs <paramref name="count"/> inferences (unversioned unless <paramref name="version"/>), <paramref name="parallel"/> at a time.</summary>
    public async Task<IReadOnlyList<InferOutcome>> InferManyAsync(string model, int count, int parallel = 8, Func<int, string?>? id = null, long? version = null)
    {
        var outcomes = new InferOutcome[count];
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = parallel, CancellationToken = Ct },
            async (i, ct) => outcomes[i] = await InferAsync(model, version, id?.Invoke(i), cancellationToken: ct));
        return outcomes;
    }
}
