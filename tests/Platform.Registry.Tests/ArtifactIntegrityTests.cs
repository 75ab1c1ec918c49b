using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Amazon.S3.Model;
using Platform.ModelRegistry;
using Platform.OnnxModels;
using Platform.TestSupport;

namespace Platform.Registry.Tests;

/// <summary>
/// A worker loads only the bytes that were uploaded: an artifact damaged or deleted in the object store after upload leaves
/// its version unserved with the cause named, while the worker stays healthy and serves its other models.
/// </summary>
public sealed class ArtifactIntegrityTests(PlatformFixture platform)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("damaged", "is damaged: its")]
    [InlineData("missing", "is missing from the object store")]
    public async Task AnArtifactChangedInTheObjectStoreLeavesItsVersionUnservedWithTheCause(string fault, string cause)
    {
        var healthy = Unique("intact");
        var victim = Unique(fault);
        await UploadAsync(healthy, ModelCatalog.Generate("mlp", new ModelRequest { Seed = (ulong)Random.Shared.Next(1000, 1_000_000) }).Bytes, activate: true);
        var sha256 = await UploadAsync(victim, ModelCatalog.Generate("mlp", new ModelRequest { Seed = (ulong)Random.Shared.Next(1000, 1_000_000) }).Bytes, activate: false);

        // Between upload and activation the object changes behind the registry's back (bit rot, an operator's mistake).
        var key = ModelArtifacts.ObjectKey(sha256);
        if (fault == "damaged")
        {
            using var original = await platform.ObjectStore.GetObjectAsync("models", key, Ct);
            using var copy = new MemoryStream();
            await original.ResponseStream.CopyToAsync(copy, Ct);
            var bytes = copy.ToArray();
            bytes[bytes.Length / 2] ^= 0x5a;
            await platform.ObjectStore.PutObjectAsync(new PutObjectRequest { BucketName = "models", Key = key, InputStream = new MemoryStream(bytes), UseChunkEncoding = false }, Ct);
        }
        else
        {
            await platform.ObjectStore.DeleteObjectAsync("models", key, Ct);
        }

        using (var activate = await platform.Admin.PostAsync($"/api/models/{victim}/versions/1/activate", null, Ct))
        {
            Assert.True(activate.IsSuccessStatusCode, await activate.Content.ReadAsStringAsync(Ct));
        }

        var tenant = await PlatformTenants.CreateAsync(platform.Admin, Unique("integrity"), cancellationToken: Ct);
        using var inference = platform.App.CreateHttpClient("inference-api").WithApiKey(tenant.Key);

        // The healthy model serves; the victim is refused with 503 naming the version and the cause, once every replica tried.
        await Waits.UntilAsync(() => InferAsync(inference, healthy), r => r.Status == HttpStatusCode.OK, TimeSpan.FromSeconds(90), $"{healthy} served", Ct);
        var refused = await Waits.UntilAsync(() => InferAsync(inference, victim),
            r => r.Status == HttpStatusCode.ServiceUnavailable && r.Body.Contains(cause, StringComparison.Ordinal),
            TimeSpan.FromSeconds(90), $"{victim} refused for its {fault} artifact", Ct);
        Assert.Contains($"model '{victim}' version 1 failed to load", refused.Body, StringComparison.Ordinal);
        Assert.Contains(key, refused.Body, StringComparison.Ordinal);
        Assert.NotNull(refused.RetryAfter);
        Assert.Equal(HttpStatusCode.OK, (await InferAsync(inference, healthy)).Status);

        for (var replica = 0; replica < 2; replica++)
        {
            using var worker = platform.App.CreateReplicaHttpClient("model-worker", replica);
            using (var health = await worker.GetAsync("/health", Ct))
            {
                Assert.True(health.StatusCode == HttpStatusCode.OK, await health.Content.ReadAsStringAsync(Ct));
            }

            var metrics = await worker.GetStringAsync("/metrics", Ct);
            Assert.True(PrometheusText.Value(metrics, "platform_worker_model_load_failures_total", ("model", victim), ("cause", fault)) >= 1,
                $"replica {replica} did not count the {fault} artifact of {victim}");
        }

        Assert.Contains($"Refused to load {victim} version 1 ({fault} artifact)", platform.App.Logs("model-worker", 500), StringComparison.Ordinal);
    }

    private async Task<string> UploadAsync(string name, byte[] bytes, bool activate)
    {
        using var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var response = await platform.Admin.PostAsync($"/api/models/{name}/versions{(activate ? "?activate=true" : "")}", content, Ct);
        var body = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("sha256").GetString()!;
    }

    private static async Task<(HttpStatusCode Status, string Body, TimeSpan? RetryAfter)> InferAsync(HttpClient client, string model)
    {
        using var response = await client.PostAsync($"/v2/models/{model}/infer", JsonContent.Create(new
        {
            inputs = new[] { new { name = "input", shape = new[] { 1, 16 }, datatype = "FP32", data = Enumerable.Range(0, 16).Select(i => i / 16f).ToArray() } },
        }), Ct);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(Ct), response.Headers.RetryAfter?.Delta);
    }

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];
}
