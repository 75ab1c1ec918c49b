using Platform.VectorSearch;

namespace Platform.VectorSearch.Tests;

public sealed class VectorIndexTests
{
    private static float[] RandomVector(Random random, int dims)
    {
        var v = new float[dims];
        for (var i = 0; i < dims; i++)
        {
            // Box-Muller: Gaussian components give directions spread over the sphere.
            v[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        }

        return v;
    }

    /// <summary>Independent reference: cosine in double precision over the raw vectors, full sort.</summary>
    private static List<(Guid Id, double Score)> BruteForce(IReadOnlyList<(Guid Id, float[] V, Dictionary<string, string> M)> docs,
        float[] q, int k, Dictionary<string, string>? filter)
    {
        double Norm(float[] v) => Math.Sqrt(v.Sum(x => (double)x * x));
        var qn = Norm(q);
        return docs
            .Where(d => filter is null || filter.All(f => d.M.TryGetValue(f.Key, out var v) && v == f.Value))
            .Select(d => (d.Id, Score: d.V.Zip(q, (a, b) => (double)a * b).Sum() / (Norm(d.V) * qn)))
            .OrderByDescending(x => x.Score).ThenBy(x => x.Id)
            .Take(k).ToList();
    }

    [Theory]
    [InlineData(64, 5_000, 10, false)]
    [InlineData(384, 20_000, 5, false)]
    [InlineData(64, 5_000, 10, true)]
    public void TopKEqualsBruteForce(int dims, int count, int k, bool withFilter)
    {
        var random = new Random(1234 + dims + count);
        var index = new VectorIndex(dims, 16);
        var docs = new List<(Guid, float[], Dictionary<string, string>)>();
        for (var i = 0; i < count; i++)
        {
            var id = new Guid(random.Next(), (short)random.Next(), (short)random.Next(), [.. Enumerable.Range(0, 8).Select(_ => (byte)random.Next(256))]);
            var meta = new Dictionary<string, string> { ["lang"] = i % 3 == 0 ? "de" : "en", ["tenant"] = $"t{i % 5}" };
            var v = RandomVector(random, dims);
            docs.Add((id, v, meta));
            index.Upsert(id, v, meta);
        }

        for (var query = 0; query < 25; query++)
        {
            var q = RandomVector(random, dims);
            var filter = withFilter ? new Dictionary<string, string> { ["lang"] = "de", ["tenant"] = $"t{query % 5}" } : null;
            var expected = BruteForce(docs, q, k, filter);
            var actual = index.Search(q, k, filter);
            Assert.Equal(expected.Count, actual.Count);
            for (var i = 0; i < expected.Count; i++)
            {
                Assert.Equal(expected[i].Score, actual[i].Score, 4);
                if (i + 1 < expected.Count && expected[i].Score - expected[i + 1].Score < 1e-5)
                {
                    continue; // a float-level tie may swap neighbours
                }

                Assert.Equal(expected[i].Id, actual[i].Id);
            }

            if (filter is not null)
            {
                Assert.All(actual, h => Assert.True(h.Metadata["lang"] == "de" && h.Metadata["tenant"] == filter["tenant"]));
            }
        }
    }

    [Fact]
    public void UpsertReplacesAndRemoveForgets()
    {
        var index = new VectorIndex(3);
        var a = Guid.NewGuid();
        var b = Guid.NewGuid();
        var c = Guid.NewGuid();
        var none = new Dictionary<string, string>();
        index.Upsert(a, [1, 0, 0], none);
        index.Upsert(b, [0, 1, 0], none);
        index.Upsert(c, [0, 0, 1], none);
        Assert.Equal(a, index.Search([1, 0.1f, 0], 1)[0].Id);

        index.Upsert(a, [0, 0, 5], new Dictionary<string, string> { ["v"] = "2" });
        Assert.Equal(3, index.Count);
        var hits = index.Search([0, 0, 1], 2);
        Assert.Equal(1f, hits[0].Score, 5);
        Assert.Equal(1f, hits[1].Score, 5);
        Assert.Equal(new[] { a, c }.Order(), hits.Select(h => h.Id).Order());

        Assert.True(index.Remove(a));
        Assert.False(index.Remove(a));
        Assert.Equal(2, index.Count);
        Assert.Equal(c, index.Search([0, 0, 1], 1)[0].Id);
        Assert.Equal(b, index.Search([0, 1, 0], 1)[0].Id);
    }

    [Fact]
    public void BadVectorsAreRejectedWithTheirName()
    {
        var index = new VectorIndex(4);
        var wrongLength = Assert.Throws<ArgumentException>(() => index.Upsert(Guid.NewGuid(), [1, 2, 3], new Dictionary<string, string>()));
        Assert.Contains("3 dimensions", wrongLength.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => index.Search([0, 0, 0, 0], 3));
        Assert.Throws<ArgumentException>(() => index.Search([float.NaN, 0, 0, 1], 3));
        Assert.Empty(index.Search([1, 0, 0, 0], 3));
    }
}
