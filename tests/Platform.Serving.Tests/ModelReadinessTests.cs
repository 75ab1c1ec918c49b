using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Platform.Inference.Protocol;
using Platform.ModelRegistry;
using Platform.ObjectStore;
using Platform.OnnxModels;
using Platform.TestSupport;

namespace Platform.Serving.Tests;

/// <summary>
/// <c>GET /v2/models/{name}[/versions/{v}]/ready</c> reflects the workers, not just the registry; and the request size
/// limit answers 413 in the documented shape.
/// </summary>
public sealed class ModelReadinessTests(ServingFixture fixture)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AModelIsReadyOnlyOnceAWorkerHasItLoaded()
    {
        var client = fixture.Client;
        var suffix = Guid.NewGuid().ToString("N")[..8];

        // Loaded: ready on both routes.
        var loaded = $"ready-{suffix}";
        var model = ModelCatalog.Generate("mlp", new ModelRequest { Seed = 4101 });
        var version = await client.UploadAsync(loaded, model.Bytes, Ct);
        await client.ActivateAsync(loaded, version, Ct);
        await client.WaitServedAsync(loaded, version, Probe(), Ct);
        await AssertReadyAsync($"/v2/models/{loaded}/ready", loaded, 200, true);
        await AssertReadyAsync($"/v2/models/{loaded}/versions/{version}/ready", loaded, 200, true);

        // Active in the registry but loadable by no worker: its file was removed from the object store before activation,
        // so every replica fails to fetch it. The registry still lists it (metadata answers), yet it is not ready.
        var broken = $"unready-{suffix}";
        var brokenModel = ModelCatalog.Generate("mlp", new ModelRequest { Seed = 4102 });
        var brokenVersion = await client.UploadAsync(broken, brokenModel.Bytes, Ct);
        using (var store = S3ObjectStore.CreateClient(ObjectStoreConnection.Parse(await fixture.App.GetConnectionStringAsync("objectstore", Ct))))
        {
            await store.DeleteObjectAsync("models", ModelArtifacts.ObjectKey(brokenModel.Sha256), Ct);
        }

        await client.ActivateAsync(broken, brokenVersion, Ct);
        try
        {
            await WaitForMetadataAsync(broken);
            // Twice, over more than the readiness cache (1 s), so a fresh answer from the replicas is included.
            for (var i = 0; i < 2; i++)
            {
                await AssertReadyAsync($"/v2/models/{broken}/versions/{brokenVersion}/ready", broken, 503, false);
                await AssertReadyAsync($"/v2/models/{broken}/ready", broken, 503, false);
                await Task.Delay(TimeSpan.FromSeconds(1.5), Ct);
            }
        }
        finally
        {
            using var admin = AdminClient();
            await admin.PostAsync($"/api/models/{broken}/versions/{brokenVersion}/deactivate", null, Ct);
        }

        // Unknown stays 404.
        using var unknown = await client.Inference.GetAsync($"/v2/models/nope-{suffix}/ready", Ct);
        Assert.Equal(404, (int)unknown.StatusCode);
    }

    [Fact]
    public async Task ABodyOverTheLimitIs413NamingTheLimit()
    {
        var client = fixture.Client;
        var name = $"limit-{Guid.NewGuid():N}"[..14];
        var model = ModelCatalog.Generate("mlp", new ModelRequest { Seed = 4103 });
        var version = await client.UploadAsync(name, model.Bytes, Ct);
        await client.ActivateAsync(name, version, Ct);
        await client.WaitServedAsync(name, version, Probe(), Ct);

        // InferenceApi:MaxRequestBytes is 64 MiB by default (the shared platform runs with the defaults).
        const long Limit = 64L * 1024 * 1024;
        var body = new byte[Limit + 1];
        "{}"u8.CopyTo(body);
        var (status, answer, response) = await client.PostRawAsync($"/v2/models/{name}/infer", body, headerLength: 2, Ct);
        response.Dispose();

        Assert.Equal(413, status);
        using var json = JsonDocument.Parse(answer);
        var error = json.RootElement.GetProperty("error").GetString();
        Assert.Contains(Limit.ToString(System.Globalization.CultureInfo.InvariantCulture), error, StringComparison.Ordinal);

        // The limit holds for what a compressed body expands to: ~64 KB of gzip on the wire, over 64 MiB once decoded.
        var compressed = ServingClient.Compress(body, "gzip");
        (status, answer, response) = await client.PostRawAsync($"/v2/models/{name}/infer", compressed, headerLength: 2, Ct, contentEncoding: "gzip");
        response.Dispose();
        Assert.True(compressed.Length < Limit / 100, $"{compressed.Length} bytes compressed");
        Assert.Equal(413, status);
        using var expanded = JsonDocument.Parse(answer);
        Assert.Contains(Limit.ToString(System.Globalization.CultureInfo.InvariantCulture), expanded.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    private static InferTensor Probe()
    {
        var values = Enumerable.Range(0, 16).Select(i => i / 16f).ToArray();
        return new InferTensor("input", DataType.Fp32, [1, 16], MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
    }

    private async Task AssertReadyAsync(string path, string name, int status, bool ready)
    {
        using var response = await fixture.Client.Inference.GetAsync(path, Ct);
        var body = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(status == (int)response.StatusCode, $"GET {path}: {(int)response.StatusCode} {body}");
        using var json = JsonDocument.Parse(body);
        Assert.Equal(name, json.RootElement.GetProperty("name").GetString());
        Assert.Equal(ready, json.RootElement.GetProperty("ready").GetBoolean());
    }

    /// <summary>Waits until InferenceApi's registry view has the activation (the metadata route answers 200).</summary>
    private Task WaitForMetadataAsync(string name) =>
        Waits.UntilAsync(async () =>
        {
            using var response = await fixture.Client.Inference.GetAsync($"/v2/models/{name}", Ct);
            return (Status: (int)response.StatusCode, Body: Encoding.UTF8.GetString(await response.Content.ReadAsByteArrayAsync(Ct)));
        }, r => r.Status == 200, TimeSpan.FromSeconds(60), $"{name} in InferenceApi", Ct);

    private HttpClient AdminClient()
    {
        var admin = fixture.App.CreateHttpClient("admin-api");
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ServingFixture.AdminKey);
        return admin;
    }
}
