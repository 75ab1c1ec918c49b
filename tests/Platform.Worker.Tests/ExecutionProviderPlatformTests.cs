using System.Text.Json;
using Platform.OnnxModels;

namespace Platform.Worker.Tests;

/// <summary>The running platform's workers report the execution provider each model version runs on, and why not CUDA.</summary>
public sealed class ExecutionProviderPlatformTests(PlatformFixture platform) : IClassFixture<PlatformFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task EveryReplicaListsEachModelVersionsProviderAndTheFallbackReason()
    {
        var mlp = MlpClassifier.Create(new MlpClassifierOptions { InputFeatures = 16, HiddenSizes = [16], Classes = 3, Seed = 31 });
        var name = $"provider-{Guid.NewGuid():N}"[..17];
        var version = await platform.UploadActiveAsync(name, mlp.ToModel().Bytes, Ct);
        await platform.WaitUntilReadyEverywhereAsync(name, version, TimeSpan.FromSeconds(60), Ct);
        var cuda = string.Equals(Environment.GetEnvironmentVariable("PLATFORM_TEST_EXECUTION_PROVIDER"), "cuda", StringComparison.OrdinalIgnoreCase);

        for (var replica = 0; replica < 2; replica++)
        {
            using var http = await platform.App.CreateWorkerHttpClientAsync(replica, Ct);
            using var listing = JsonDocument.Parse(await http.GetStringAsync("/v1/models", Ct));
            var model = listing.RootElement.GetProperty("models").EnumerateArray()
                .Single(m => m.GetProperty("name").GetString() == name && m.GetProperty("version").GetInt64() == version);
            var reason = model.GetProperty("executionProviderFallbackReason");
            if (cuda)
            {
                Assert.Equal("CUDA", model.GetProperty("executionProvider").GetString());
                Assert.Equal(JsonValueKind.Null, reason.ValueKind);
            }
            else
            {
                // The workers' default is auto; on a machine without CUDA ONNX Runtime's reason comes along.
                Assert.Equal("CPU", model.GetProperty("executionProvider").GetString());
                Assert.Contains("libonnxruntime_providers_cuda.so", reason.GetString(), StringComparison.Ordinal);
            }

            using var health = JsonDocument.Parse(await http.GetStringAsync("/health", Ct));
            var onnxRuntime = health.RootElement.GetProperty("checks").EnumerateArray()
                .Single(c => c.GetProperty("name").GetString() == "onnxruntime").GetProperty("description").GetString()!;
            Assert.StartsWith($"ONNX Runtime 1.32.0 on {(cuda ? "CUDA" : "CPU")}", onnxRuntime, StringComparison.Ordinal);
            if (!cuda)
            {
                Assert.Contains($"(CUDA not used: {reason.GetString()})", onnxRuntime, StringComparison.Ordinal);
            }
        }
    }
}
