using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using StackExchange.Redis;

namespace Platform.Integration.Tests;

/// <summary>ContextEnrichment against the real Postgres and Redis of the running platform.</summary>
public sealed class EnrichmentTests(PlatformFixture fixture)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    private HttpClient Client() => fixture.App.CreateHttpClient("context-enrichment");

    [Fact]
    public async Task FeaturesAreStoredInPostgresAndServedFromTheRedisCache()
    {
        using var http = Client();
        var entity = $"customer-{Guid.NewGuid():N}";
        var put = await http.PutAsJsonAsync($"/api/features/churn-v1/{entity}", new { values = new[] { 0.5f, -1.25f, 3f } }, Ct);
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);

        // Written through: the first read is already a cache hit.
        var first = await http.GetFromJsonAsync<JsonElement>($"/api/features/churn-v1/{entity}", Ct);
        Assert.Equal("cache", first.GetProperty("source").GetString());
        Assert.Equal([0.5f, -1.25f, 3f], first.GetProperty("values").EnumerateArray().Select(v => v.GetSingle()));

        // Postgres is the source of truth: with the cache entry gone the vector is read from the database, then cached again.
        await EvictAsync("churn-v1", entity);
        var fromDatabase = await http.GetFromJsonAsync<JsonElement>($"/api/features/churn-v1/{entity}", Ct);
        Assert.Equal("database", fromDatabase.GetProperty("source").GetString());
        Assert.Equal([0.5f, -1.25f, 3f], fromDatabase.GetProperty("values").EnumerateArray().Select(v => v.GetSingle()));
        var refilled = await http.GetFromJsonAsync<JsonElement>($"/api/features/churn-v1/{entity}", Ct);
        Assert.Equal("cache", refilled.GetProperty("source").GetString());
        Assert.Equal([0.5f, -1.25f, 3f], refilled.GetProperty("values").EnumerateArray().Select(v => v.GetSingle()));

        // A write replaces the cached copy: the next read sees the new vector.
        await http.PutAsJsonAsync($"/api/features/churn-v1/{entity}", new { values = new[] { 9f } }, Ct);
        var third = await http.GetFromJsonAsync<JsonElement>($"/api/features/churn-v1/{entity}", Ct);
        Assert.Equal([9f], third.GetProperty("values").EnumerateArray().Select(v => v.GetSingle()));
        await EvictAsync("churn-v1", entity);
        var thirdFromDatabase = await http.GetFromJsonAsync<JsonElement>($"/api/features/churn-v1/{entity}", Ct);
        Assert.Equal([9f], thirdFromDatabase.GetProperty("values").EnumerateArray().Select(v => v.GetSingle()));

        var missing = await http.GetAsync($"/api/features/churn-v1/nobody-{Guid.NewGuid():N}", Ct);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task OneLookupReturnsAnEntitysVectorsInSeveralSetsAndNamesTheMissingOnes()
    {
        using var http = Client();
        var entity = $"lookup-{Guid.NewGuid():N}";
        await http.PutAsJsonAsync($"/api/features/lookup-a/{entity}", new { values = new[] { 1f, 2f } }, Ct);
        await http.PutAsJsonAsync($"/api/features/lookup-b/{entity}", new { values = new[] { -3.5f } }, Ct);
        await EvictAsync("lookup-a", entity); // lookup-b stays cached: the lookup mixes cache and database

        var answer = await http.GetFromJsonAsync<JsonElement>($"/api/entities/{entity}/features?sets=lookup-b,lookup-none,lookup-a", Ct);
        var features = answer.GetProperty("features").EnumerateArray().ToList();
        Assert.Equal(["lookup-b", "lookup-a"], features.Select(f => f.GetProperty("featureSet").GetString()));
        Assert.Equal(["cache", "database"], features.Select(f => f.GetProperty("source").GetString()));
        Assert.Equal([-3.5f], features[0].GetProperty("values").EnumerateArray().Select(v => v.GetSingle()));
        Assert.Equal([1f, 2f], features[1].GetProperty("values").EnumerateArray().Select(v => v.GetSingle()));
        Assert.Equal(["lookup-none"], answer.GetProperty("missing").EnumerateArray().Select(m => m.GetString()));

        using var noSets = await http.GetAsync($"/api/entities/{entity}/features", Ct);
        Assert.Equal(HttpStatusCode.BadRequest, noSets.StatusCode);
        Assert.Contains("'sets' is required", await noSets.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        using var badSet = await http.GetAsync($"/api/entities/{entity}/features?sets=ok,bad%20set", Ct);
        Assert.Equal(HttpStatusCode.BadRequest, badSet.StatusCode);
        Assert.Contains("'featureSet'", await badSet.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
    }

    /// <summary>Drops a vector's cache entry straight in the platform's Redis, as a TTL expiry or an eviction would.</summary>
    private async Task EvictAsync(string featureSet, string entity)
    {
        var cs = await fixture.App.GetConnectionStringAsync("redis", Ct);
        using var redis = await ConnectionMultiplexer.ConnectAsync(cs!);
        Assert.True(await redis.GetDatabase().KeyDeleteAsync($"features:{featureSet}:{entity}"), "the vector was not cached");
    }

    [Theory]
    [InlineData("/api/features/churn-v1/x", "{}", "'values' is required")]
    [InlineData("/api/features/churn-v1/x", "{\"values\":[]}", "'values' is required")]
    [InlineData("/api/features/bad%20set/x", "{\"values\":[1]}", "'featureSet'")]
    public async Task BadFeatureWritesAreRejectedNamingTheField(string path, string body, string message)
    {
        using var http = Client();
        var response = await http.PutAsync(path, new StringContent(body, System.Text.Encoding.UTF8, "application/json"), Ct);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(message, await response.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SimilaritySearchReturnsExactlyTheBruteForceTopK()
    {
        using var http = Client();
        var collection = $"c{Guid.NewGuid():N}"[..20];
        var random = new Random(7);
        var docs = new List<(Guid Id, float[] V, string Lang)>();
        for (var i = 0; i < 200; i++)
        {
            var v = Enumerable.Range(0, 16).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            var doc = (Guid.NewGuid(), v, i % 2 == 0 ? "en" : "de");
            docs.Add(doc);
            var response = await http.PostAsJsonAsync($"/api/collections/{collection}/documents",
                new { id = doc.Item1, text = $"document {i}", metadata = new Dictionary<string, string> { ["lang"] = doc.Item3 }, embedding = v }, Ct);
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        }

        for (var q = 0; q < 5; q++)
        {
            var query = Enumerable.Range(0, 16).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            var filter = q % 2 == 0 ? null : new Dictionary<string, string> { ["lang"] = "de" };
            var expected = docs.Where(d => filter is null || d.Lang == "de")
                .Select(d => (d.Id, Score: Cosine(d.V, query))).OrderByDescending(x => x.Score).Take(7).ToList();
            var result = await http.PostAsJsonAsync($"/api/collections/{collection}/search", new { embedding = query, k = 7, filter }, Ct);
            Assert.Equal(HttpStatusCode.OK, result.StatusCode);
            var hits = (await result.Content.ReadFromJsonAsync<JsonElement>(Ct)).GetProperty("hits").EnumerateArray().ToList();
            Assert.Equal(expected.Select(e => e.Id), hits.Select(h => h.GetProperty("id").GetGuid()));
            Assert.All(hits.Zip(expected), p => Assert.Equal(p.Second.Score, p.First.GetProperty("score").GetDouble(), 4));
            Assert.All(hits, h => Assert.StartsWith("document ", h.GetProperty("text").GetString(), StringComparison.Ordinal));
        }

        var wrongDims = await http.PostAsJsonAsync($"/api/collections/{collection}/search", new { embedding = new[] { 1f, 2f }, k = 3 }, Ct);
        Assert.Equal(HttpStatusCode.BadRequest, wrongDims.StatusCode);
        Assert.Contains("'embedding' has 2 dimensions", await wrongDims.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
    }

    private static double Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (var i = 0; i < a.Length; i++)
        {
            dot += (double)a[i] * b[i];
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }

        return dot / Math.Sqrt(na * nb);
    }
}
