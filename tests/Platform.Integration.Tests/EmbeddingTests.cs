using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Platform.OnnxModels;
using Platform.TestSupport;

namespace Platform.Integration.Tests;

/// <summary>Document text is embedded by the platform's own workers with a model from the registry.</summary>
public sealed class EmbeddingTests(PlatformFixture fixture)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task TextIsEmbeddedByTheRegisteredModelOnTheWorkers()
    {
        var reference = EmbeddingModel.Create();
        using var admin = fixture.App.CreateHttpClient("admin-api");
        var adminKey = PlatformFixture.AdminKey;
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", adminKey);
        using var upload = new ByteArrayContent(reference.ToModel().Bytes);
        upload.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        var created = await admin.PostAsync("/api/models/text-embedding/versions", upload, Ct);
        Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync(Ct));
        var version = (await created.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("version").GetInt64();
        var activated = await admin.PostAsync($"/api/models/text-embedding/versions/{version}/activate", null, Ct);
        Assert.True(activated.IsSuccessStatusCode, await activated.Content.ReadAsStringAsync(Ct));

        using var enrichment = fixture.App.CreateHttpClient("context-enrichment");
        var collection = $"e{Guid.NewGuid():N}"[..16];
        string[] texts = ["The quick brown fox jumps over the lazy dog", "Invoices are due within thirty days", "GPU nodes need the NVIDIA device plugin"];
        var ids = new List<Guid>();
        foreach (var text in texts)
        {
            // The workers pick up the activation asynchronously (pub/sub + reconcile): retry while they load it.
            var response = await Waits.UntilAsync(() => enrichment.PostAsJsonAsync($"/api/collections/{collection}/documents", new { text }, Ct),
                r => r.StatusCode != HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(30), "the embedding model loaded", Ct);

            Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync(Ct));
            ids.Add((await response.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("id").GetGuid());
        }

        // The text query finds its own document with cosine 1.
        var byText = await enrichment.PostAsJsonAsync($"/api/collections/{collection}/search", new { text = texts[1], k = 3 }, Ct);
        var hits = (await byText.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("hits").EnumerateArray().ToList();
        Assert.Equal(ids[1], hits[0].GetProperty("id").GetGuid());
        Assert.Equal(1.0, hits[0].GetProperty("score").GetDouble(), 4);

        // The stored vector is what the model computes: the independent C# reference with the same token ids.
        var tokenIds = Tokenize(texts[2], reference.Options.VocabularySize);
        var expected = reference.Embed(tokenIds, Enumerable.Repeat(1L, tokenIds.Length).ToArray(), 1, tokenIds.Length);
        var byVector = await enrichment.PostAsJsonAsync($"/api/collections/{collection}/search", new { embedding = expected, k = 1 }, Ct);
        var top = (await byVector.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("hits")[0];
        Assert.Equal(ids[2], top.GetProperty("id").GetGuid());
        Assert.True(top.GetProperty("score").GetDouble() > 0.99999, $"cosine {top.GetProperty("score").GetDouble()}");
    }

    /// <summary>The documented tokenizer: lower-cased words, trimmed of punctuation, FNV-1a modulo the vocabulary.</summary>
    private static long[] Tokenize(string text, int vocabulary) =>
        text.ToLowerInvariant().Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(w => w.Trim('.', ',', ';', ':', '!', '?', '"', '\'', '(', ')'))
            .Where(w => w.Length > 0)
            .Select(w => (long)(Encoding.UTF8.GetBytes(w).Aggregate(2166136261u, (h, b) => (h ^ b) * 16777619u) % (uint)vocabulary))
            .ToArray();
}
