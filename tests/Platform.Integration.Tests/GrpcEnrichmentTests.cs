using System.Runtime.InteropServices;
using Grpc.Core;
using Grpc.Net.Client;
using Platform.Inference.OpenInference;
using Platform.Inference.OpenInference.Grpc;
using Platform.Inference.Protocol;
using Platform.OnnxModels;
using Platform.OnnxRuntime;
using Platform.TestSupport;

namespace Platform.Integration.Tests;

/// <summary>Feature enrichment over gRPC: <c>parameters.entity_id</c> fills bound inputs exactly as over REST.</summary>
public sealed class GrpcEnrichmentTests(PlatformFixture fixture, OrtFixture ort) : IDisposable
{
    private readonly FeatureBindingClient _client = new(fixture);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose() => _client.Dispose();

    [Fact]
    public async Task EntityIdOverGrpcFillsTheBoundInputsLikeRest()
    {
        var model = $"grpc-bind-{Guid.NewGuid():N}"[..20];
        var set = $"grpc-feat-{Guid.NewGuid():N}"[..20];
        var entity = $"cust-{Guid.NewGuid():N}"[..16];
        var onnx = MlpClassifier.Create(new MlpClassifierOptions { Seed = 33 }).ToModel().Bytes;
        var row = Enumerable.Range(0, 16).Select(i => i / 8f - 1).ToArray();
        var version = await _client.DeployAsync(model, onnx, [new InferTensor("input", DataType.Fp32, [1, 16], MemoryMarshal.AsBytes(row.AsSpan()).ToArray())], Ct);
        float[] features = [.. Enumerable.Range(0, 16).Select(i => (i % 5) * 0.25f - 0.5f)];
        await _client.PutFeaturesAsync(set, entity, features, Ct);
        await _client.BindAsync(model, version, new object[] { new { input = "input", featureSet = set } }, Ct);
        var rest = await _client.InferBoundAsync(model, [], entity, Ct);
        Assert.True(rest.Status == 200, rest.ToString());

        var tenant = await PlatformTenants.CreateAsync(_client.Admin, $"grpc-bind-{Guid.NewGuid():N}"[..21], cancellationToken: Ct);
        using var channel = GrpcChannel.ForAddress(fixture.App.GetEndpoint("inference-api", "grpc"));
        var grpc = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
        var answer = await grpc.ModelInferAsync(
            GrpcInferCodec.WriteRequest(model, null, [], parameters: new InferRequestParameters { EntityId = entity }),
            new CallOptions(new Metadata { { "authorization", $"Bearer {tenant.Key}" } }, DateTime.UtcNow.AddSeconds(60), cancellationToken: Ct));
        var output = GrpcInferCodec.ReadResponse(answer)["probabilities"];

        using var session = ort.Ort.CreateSession(onnx);
        using var reference = session.Run([new NamedTensor("input", TensorData.From(features, 1, 16))], cancellationToken: Ct);
        Assert.Equal(reference["probabilities"].GetBytes().ToArray(), output.Data.ToArray());
        Assert.Equal(rest.Response!["probabilities"].Data.ToArray(), output.Data.ToArray());

        // An entity without features and no default: the same 400 as REST, as INVALID_ARGUMENT.
        var missing = await Assert.ThrowsAsync<RpcException>(async () => await grpc.ModelInferAsync(
            GrpcInferCodec.WriteRequest(model, null, [], parameters: new InferRequestParameters { EntityId = "nobody-" + entity }),
            new CallOptions(new Metadata { { "authorization", $"Bearer {tenant.Key}" } }, DateTime.UtcNow.AddSeconds(60), cancellationToken: Ct)));
        Assert.Equal(StatusCode.InvalidArgument, missing.StatusCode);
        Assert.Equal($"input 'input': entity 'nobody-{entity}' has no features in set '{set}' and the binding has no default", missing.Status.Detail);
    }
}
