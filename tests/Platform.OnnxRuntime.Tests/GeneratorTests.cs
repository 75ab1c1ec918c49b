using Platform.OnnxModels;
using Platform.OnnxModels.Proto;

namespace Platform.OnnxRuntime.Tests;

public sealed class GeneratorTests(OrtFixture fixture)
{
    [Theory]
    [InlineData("mlp")]
    [InlineData("multi-io")]
    [InlineData("embedding")]
    [InlineData("benchmark")]
    [InlineData("all-types")]
    public void Same_seed_gives_identical_bytes(string kind)
    {
        var first = ModelCatalog.Generate(kind, new ModelRequest { Seed = 42 });
        var second = ModelCatalog.Generate(kind, new ModelRequest { Seed = 42 });
        Assert.Equal(first.Sha256, second.Sha256);
        Assert.Equal(first.Bytes, second.Bytes);
        Assert.Equal(kind, first.Kind);
        Assert.Matches("^[0-9a-f]{64}$", first.Sha256);
    }

    [Theory]
    [InlineData("mlp")]
    [InlineData("embedding")]
    [InlineData("benchmark")]
    public void Different_seed_gives_different_weights(string kind)
    {
        Assert.NotEqual(
            ModelCatalog.Generate(kind, new ModelRequest { Seed = 1 }).Sha256,
            ModelCatalog.Generate(kind, new ModelRequest { Seed = 2 }).Sha256);
    }

    [Fact]
    public void Small_mlp_bytes_are_pinned()
    {
        // Guards against accidental changes to the generator, PRNG or serialisation (any machine, any .NET version).
        var model = ModelCatalog.Generate("mlp", new ModelRequest { Seed = 1 });
        Assert.Equal(PinnedMlpSha256, model.Sha256);
    }

    private const string PinnedMlpSha256 = "67333d81d159bbe8efdd6b92443c37fc9cee333327daa9a9d644425115507656";

    [Fact]
    public void Prng_sequence_is_fixed()
    {
        var random = new DeterministicRandom(0);
        // SplitMix64 reference outputs for seed 0.
        Assert.Equal(0xE220A8397B1DCDAFUL, random.NextUInt64());
        Assert.Equal(0x6E789E6AA1B965F4UL, random.NextUInt64());
        Assert.Equal(0x06C45D188009454FUL, random.NextUInt64());
    }

    [Fact]
    public void Model_proto_uses_onnx_field_layout()
    {
        var bytes = ModelCatalog.Generate("mlp").Bytes;
        var model = ModelProto.Parser.ParseFrom(bytes);
        Assert.Equal(OnnxGraphBuilder.IrVersion, model.IrVersion);
        Assert.Equal("", model.OpsetImport.Single().Domain);
        Assert.Equal(OnnxGraphBuilder.DefaultOpset, model.OpsetImport.Single().Version);
        Assert.Equal("Platform.OnnxModels", model.ProducerName);
        var input = model.Graph.Input.Single();
        Assert.Equal("input", input.Name);
        Assert.Equal((int)OnnxDataType.Float, input.Type.TensorType.ElemType);
        Assert.Equal("batch", input.Type.TensorType.Shape.Dim[0].DimParam);
        Assert.Equal(16, input.Type.TensorType.Shape.Dim[1].DimValue);
        Assert.Contains(model.MetadataProps, p => p.Key == "platform.kind" && p.Value == "mlp");
        Assert.Equal(["Gemm", "Relu", "Gemm", "Relu", "Gemm", "Softmax"], model.Graph.Node.Select(n => n.OpType));

        // Field numbers straight from onnx.proto: ModelProto.ir_version = 1 (varint) comes first on the wire.
        Assert.Equal(0x08, bytes[0]);
        Assert.Equal(8, bytes[1]);
    }

    [Fact]
    public void Benchmark_model_size_and_cost_are_reported()
    {
        var model = ModelCatalog.Generate("benchmark");
        Assert.Equal(4_993_040, model.ParameterCount);
        Assert.InRange(model.FlopsPerSample, 9_900_000, 10_100_000);
        Assert.InRange(model.Bytes.Length, 4_993_040 * 4, 4_993_040 * 4 + 10_000);
    }

    [Fact]
    public void Benchmark_model_runs_and_matches_the_reference()
    {
        var mlp = BenchmarkModel.Create(seed: 3);
        using var session = fixture.Environment.CreateSession(mlp.ToModel().Bytes);
        var input = OrtFixture.RandomInputs(2 * BenchmarkModel.InputFeatures, 12);
        using var result = session.Run([new NamedTensor("input", TensorData.From(input, 2, BenchmarkModel.InputFeatures))]);
        OrtFixture.AssertClose(mlp.Predict(input, 2), result[0].GetSpan<float>(), 1e-5);
    }

    [Fact]
    public void Catalog_rejects_unknown_kinds_and_honours_overrides()
    {
        var error = Assert.Throws<ArgumentException>(() => ModelCatalog.Generate("resnet"));
        Assert.Contains("mlp, multi-io, embedding, benchmark, all-types", error.Message, StringComparison.Ordinal);

        var custom = ModelCatalog.Generate("mlp", new ModelRequest { Features = 3, Hidden = [5], Classes = 2 });
        Assert.Equal(3 * 5 + 5 + 5 * 2 + 2, custom.ParameterCount);
        using var session = fixture.Environment.CreateSession(custom.Bytes);
        Assert.Equal([-1L, 3L], session.Inputs[0].Shape);
        Assert.Equal([-1L, 2L], session.Outputs[0].Shape);

        var embedding = ModelCatalog.Generate("embedding", new ModelRequest { Vocabulary = 10, TokenDimension = 4, Dimension = 6 });
        using var embeddingSession = fixture.Environment.CreateSession(embedding.Bytes);
        Assert.Equal([-1L, 6L], embeddingSession.Outputs[0].Shape);
        Assert.Equal(["batch", "sequence"], embeddingSession.Inputs[0].SymbolicShape);
    }

    [Fact]
    public async Task Generated_model_is_written_to_disk()
    {
        var path = Path.Combine(Path.GetTempPath(), $"platform-gen-{Guid.NewGuid():N}", "nested", "model.onnx");
        var model = ModelCatalog.Generate("multi-io");
        await model.WriteAsync(path, TestContext.Current.CancellationToken);
        try
        {
            Assert.Equal(model.Bytes, await File.ReadAllBytesAsync(path, TestContext.Current.CancellationToken));
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(Path.GetDirectoryName(path))!, recursive: true);
        }
    }
}
