using System.Runtime.InteropServices;
using Platform.Inference.Protocol;
using Platform.OnnxModels;

namespace Platform.Integration.Tests;

/// <summary>Stops ContextEnrichment, so it runs alone, after the parallel tests that use it.</summary>
[CollectionDefinition(nameof(FeatureStoreOutageCollection), DisableParallelization = true)]
public sealed class FeatureStoreOutageCollection;

/// <summary>What an inference with bound inputs answers while the feature store is down, and after it is back.</summary>
[Collection(nameof(FeatureStoreOutageCollection))]
public sealed class FeatureStoreOutageTests(PlatformFixture fixture) : IDisposable
{
    private readonly FeatureBindingClient _client = new(fixture);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose() => _client.Dispose();

    [Fact]
    public async Task AnInferenceNeedingFeaturesIs503WithRetryAfterWhileContextEnrichmentIsDown()
    {
        var model = $"bind-outage-{Guid.NewGuid():N}"[..24];
        var set = $"outage-{Guid.NewGuid():N}"[..20];
        const string Entity = "outage-entity";
        var row = Enumerable.Range(0, 16).Select(i => i / 8f - 1).ToArray();
        var input = new InferTensor("input", DataType.Fp32, [1, 16], MemoryMarshal.AsBytes(row.AsSpan()).ToArray());
        var version = await _client.DeployAsync(model, MlpClassifier.Create().ToModel().Bytes, [input], Ct);
        await _client.PutFeaturesAsync(set, Entity, row, Ct);
        await _client.BindAsync(model, version, new[] { new { input = "input", featureSet = set } }, Ct);
        var expected = await _client.InferBoundAsync(model, [], Entity, Ct);
        Assert.True(expected.Status == 200, expected.ToString());

        await fixture.App.StopAsync("context-enrichment", cancellationToken: Ct);
        try
        {
            var down = await _client.InferAsync(model, [], Entity, Ct);
            Assert.True(down.Status == 503, down.ToString());
            Assert.StartsWith($"parameters.entity_id: cannot fetch features for model '{model}': the feature store (context-enrichment) is unavailable", down.Error,
                StringComparison.Ordinal);
            Assert.True(down.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1), $"Retry-After: {down.Headers.RetryAfter}");

            // A request that needs no features is served as usual.
            var supplied = await _client.InferAsync(model, [input], Entity, Ct);
            Assert.True(supplied.Status == 200, supplied.ToString());
        }
        finally
        {
            await fixture.App.StartAsync("context-enrichment", cancellationToken: CancellationToken.None);
        }

        // Back up: the same request is answered from the features again (the client's breaker may need a moment).
        var back = await _client.InferUntilAsync(model, [], Entity, r => r.Status == 200, "an answer from the features again", Ct);
        Assert.True(back.Status == 200, back.ToString());
        Assert.Equal(expected.Response!["probabilities"].Data.ToArray(), back.Response!["probabilities"].Data.ToArray());
    }
}
