using System.Runtime.InteropServices;
using Platform.OnnxModels;

namespace Platform.OnnxRuntime.Tests;

public sealed class RunTests(OrtFixture fixture)
{
    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(64)]
    public void Mlp_matches_the_csharp_reference(int batch)
    {
        var input = OrtFixture.RandomInputs(batch * 16, (ulong)batch);
        using var result = fixture.MlpSession.Run([new NamedTensor("input", TensorData.From(input, batch, 16))]);
        var output = result["probabilities"];
        Assert.Equal(TensorElementType.Float, output.ElementType);
        Assert.Equal([batch, 5L], output.Shape);
        Assert.Equal(batch * 5, output.ElementCount);
        Assert.Equal(batch * 5 * 4, output.ByteLength);
        OrtFixture.AssertClose(fixture.Mlp.Predict(input, batch), output.GetSpan<float>(), 1e-5);
        for (var b = 0; b < batch; b++)
        {
            Assert.Equal(1.0, output.GetSpan<float>().Slice(b * 5, 5).ToArray().Sum(), 4);
        }
    }

    [Fact]
    public void MatMul_variant_matches_the_reference_too()
    {
        var mlp = MlpClassifier.Create(new MlpClassifierOptions { InputFeatures = 8, HiddenSizes = [16], Classes = 3, Seed = 3, UseGemm = false });
        using var session = fixture.Environment.CreateSession(mlp.ToModel().Bytes);
        var input = OrtFixture.RandomInputs(4 * 8, 11);
        using var result = session.Run([new NamedTensor("input", TensorData.From(input, 4, 8))]);
        OrtFixture.AssertClose(mlp.Predict(input, 4), result[0].GetSpan<float>(), 1e-5);
    }

    [Fact]
    public void Deep_mlp_with_wide_layers_matches_the_reference()
    {
        var mlp = MlpClassifier.Create(new MlpClassifierOptions { InputFeatures = 64, HiddenSizes = [256, 128, 64], Classes = 10, Seed = 5 });
        using var session = fixture.Environment.CreateSession(mlp.ToModel().Bytes);
        var input = OrtFixture.RandomInputs(9 * 64, 13);
        using var result = session.Run([new NamedTensor("input", TensorData.From(input, 9, 64))]);
        OrtFixture.AssertClose(mlp.Predict(input, 9), result[0].GetSpan<float>(), 1e-5);
    }

    [Fact]
    public void Input_memory_is_used_without_copying()
    {
        var input = OrtFixture.RandomInputs(2 * 16, 1);
        var data = TensorData.From(input, 2, 16);
        Assert.True(MemoryMarshal.AsBytes(input.AsSpan()) == data.Bytes.Span, "TensorData must view the caller's array, not a copy.");
        using var result = fixture.MlpSession.Run([new NamedTensor("input", data)]);
        Assert.Equal([2L, 5L], result[0].Shape);
    }

    [Fact]
    public void Batched_run_split_along_dim0_equals_individual_runs()
    {
        // What a dynamic batcher does: concatenate requests, run once, hand each request its rows back.
        int[] requestSizes = [1, 3, 2];
        var requests = requestSizes.Select((rows, i) => OrtFixture.RandomInputs(rows * 16, 100 + (ulong)i)).ToArray();
        var batch = requests.SelectMany(r => r).ToArray();
        using var batched = fixture.MlpSession.Run([new NamedTensor("input", TensorData.From(batch, batch.Length / 16, 16))]);
        var output = batched["probabilities"];
        Assert.Equal(5, output.ElementsPerBatchItem);

        long start = 0;
        for (var i = 0; i < requests.Length; i++)
        {
            using var single = fixture.MlpSession.Run([new NamedTensor("input", TensorData.From(requests[i], requestSizes[i], 16))]);
            var slice = MemoryMarshal.Cast<byte, float>(output.GetBatchItemBytes(start, requestSizes[i]));
            OrtFixture.AssertClose(single[0].GetSpan<float>(), slice, 1e-6);
            start += requestSizes[i];
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => output.GetBatchItemBytes(5, 2));
    }

    [Fact]
    public void Slice_of_a_larger_buffer_can_be_an_input()
    {
        var buffer = OrtFixture.RandomInputs(10 * 16, 21);
        var rows = new ReadOnlyMemory<float>(buffer, 3 * 16, 4 * 16);
        using var result = fixture.MlpSession.Run([new NamedTensor("input", TensorData.From(rows, 4, 16))]);
        OrtFixture.AssertClose(fixture.Mlp.Predict(rows.Span, 4), result[0].GetSpan<float>(), 1e-5);
    }

    [Fact]
    public void Raw_bytes_input_is_accepted()
    {
        var input = OrtFixture.RandomInputs(3 * 16, 2);
        var bytes = MemoryMarshal.AsBytes(input.AsSpan()).ToArray();
        using var result = fixture.MlpSession.Run([new NamedTensor("input", TensorData.FromBytes(TensorElementType.Float, bytes, 3, 16))]);
        OrtFixture.AssertClose(fixture.Mlp.Predict(input, 3), result[0].GetSpan<float>(), 1e-5);
    }

    [Fact]
    public void Empty_batch_runs()
    {
        using var result = fixture.MlpSession.Run([new NamedTensor("input", TensorData.From(Array.Empty<float>(), 0, 16))]);
        Assert.Equal([0L, 5L], result[0].Shape);
        Assert.Equal(0, result[0].GetBytes().Length);
    }

    [Fact]
    public void Outputs_declared_in_the_batch_dimension_are_written_into_managed_buffers_and_split_without_copies()
    {
        Assert.True(fixture.MlpSession.PreallocatesOutput("probabilities"));
        var input = OrtFixture.RandomInputs(3 * 16, 41);
        ReadOnlyMemory<byte> second;
        using (var result = fixture.MlpSession.Run([new NamedTensor("input", TensorData.From(input, 3, 16))]))
        {
            var output = result["probabilities"];
            Assert.True(output.IsManaged);
            Assert.Equal([3L, 5L], output.Shape);
            Assert.True(output.TryGetBatchItemMemory(1, 2, out second));
            Assert.True(output.GetBatchItemBytes(1, 2) == second.Span, "The slice must view the result's own buffer.");
        }
        // The slice belongs to the caller: it outlives the result and holds rows 1-2 of the reference.
        OrtFixture.AssertClose(fixture.Mlp.Predict(input, 3).AsSpan(5, 10), MemoryMarshal.Cast<byte, float>(second.Span), 1e-5);
    }

    [Fact]
    public void Outputs_whose_shape_is_not_declared_in_terms_of_the_inputs_stay_in_onnx_runtime_memory()
    {
        // [batch, n] with "n" free: the size is only known after the run.
        Assert.False(fixture.AllTypesSession.PreallocatesOutput("out_float"));
        using (var result = fixture.AllTypesSession.Run(ElementTypeTests.BuildInputs("float", TensorData.From(new float[] { 1, 2 }, 1, 2)), ["out_float"]))
        {
            Assert.False(result[0].IsManaged);
            Assert.False(result[0].TryGetBatchItemMemory(0, 1, out _));
            Assert.Equal([1f, 2f], result[0].ToArray<float>());
        }

        // Dimension 0 named differently from every input's: no promise that it equals the batch.
        var graph = new OnnxGraphBuilder("renamed");
        graph.AddInput("x", OnnxDataType.Float, "batch", 2);
        graph.AddNode("Identity", ["x"], ["y"]);
        graph.AddOutput("y", OnnxDataType.Float, "rows", 2);
        using var renamed = fixture.Environment.CreateSession(graph.ToBytes());
        Assert.False(renamed.PreallocatesOutput("y"));
        using var renamedResult = renamed.Run([new NamedTensor("x", TensorData.From(new float[] { 1, 2, 3, 4 }, 2, 2))]);
        Assert.False(renamedResult[0].IsManaged);
        Assert.Equal([1f, 2f, 3f, 4f], renamedResult[0].ToArray<float>());

        using var off = fixture.Environment.CreateSession(fixture.Mlp.ToModel().Bytes, new InferenceSessionOptions { PreallocateOutputs = false });
        Assert.False(off.PreallocatesOutput("probabilities"));
        using var offResult = off.Run([new NamedTensor("input", TensorData.From(new float[16], 1, 16))]);
        Assert.False(offResult[0].IsManaged);
    }

    [Fact]
    public void Preallocated_output_is_written_in_place()
    {
        var input = OrtFixture.RandomInputs(6 * 16, 3);
        var output = new float[6 * 5];
        fixture.MlpSession.Run(
            [new NamedTensor("input", TensorData.From(input, 6, 16))],
            [new NamedTensor("probabilities", TensorData.From(output, 6, 5))]);
        OrtFixture.AssertClose(fixture.Mlp.Predict(input, 6), output, 1e-5);
    }

    [Fact]
    public void Preallocated_output_with_wrong_dynamic_dim_is_rejected_by_onnx_runtime()
    {
        var input = OrtFixture.RandomInputs(6 * 16, 3);
        var error = Assert.Throws<OnnxRuntimeException>(() => fixture.MlpSession.Run(
            [new NamedTensor("input", TensorData.From(input, 6, 16))],
            [new NamedTensor("probabilities", TensorData.From(new float[4 * 5], 4, 5))]));
        Assert.NotEmpty(error.Message);
    }

    [Fact]
    public void Multi_io_outputs_match_the_reference()
    {
        const int batch = 5;
        var x = OrtFixture.RandomInputs(batch * 4, 17);
        var ids = Enumerable.Range(0, batch * 3).Select(i => (long)(i * 7 - 20)).ToArray();
        var scale = Enumerable.Range(0, batch).Select(i => 0.5 + i * 0.25).ToArray();
        using var result = fixture.MultiIoSession.Run(
        [
            new NamedTensor("scale", TensorData.From(scale, batch, 1)),
            new NamedTensor("x", TensorData.From(x, batch, 4)),
            new NamedTensor("ids", TensorData.From(ids, batch, 3)),
        ]);
        Assert.Equal(["y", "id_sum", "positive", "scale_squared"], result.Select(t => t.Name));
        OrtFixture.AssertClose(MultiIoModel.ComputeY(x, scale, batch), result["y"].GetSpan<float>(), 1e-6);
        Assert.Equal(MultiIoModel.ComputeIdSum(ids, batch), result["id_sum"].ToArray<long>());
        Assert.Equal([batch, 1L], result["id_sum"].Shape);
        Assert.Equal(MultiIoModel.ComputePositive(x), result["positive"].ToArray<bool>());
        Assert.Equal(MultiIoModel.ComputeScaleSquared(scale), result["scale_squared"].ToArray<double>());
    }

    [Fact]
    public void Requested_output_subset_is_returned_in_requested_order()
    {
        const int batch = 2;
        using var result = fixture.MultiIoSession.Run(
        [
            new NamedTensor("x", TensorData.From(new float[] { 1, -1, 2, -2, 0, 3, -3, 4 }, batch, 4)),
            new NamedTensor("ids", TensorData.From(new long[] { 1, 2, 3, 4, 5, 6 }, batch, 3)),
            new NamedTensor("scale", TensorData.From(new double[] { 1, 2 }, batch, 1)),
        ], ["positive", "id_sum"]);
        Assert.Equal(["positive", "id_sum"], result.Select(t => t.Name));
        Assert.Equal([6L, 15L], result["id_sum"].ToArray<long>());
        Assert.Throws<KeyNotFoundException>(() => result["y"]);
    }

    [Fact]
    public void Embedding_model_matches_the_reference_and_is_unit_norm()
    {
        var model = EmbeddingModel.Create(new EmbeddingModelOptions { VocabularySize = 50, TokenDimension = 16, OutputDimension = 24, Seed = 9 });
        using var session = fixture.Environment.CreateSession(model.ToModel().Bytes);
        const int batch = 3, sequence = 5;
        long[] ids = [1, 2, 3, 4, 5, 10, 11, 0, 0, 0, 49, 48, 47, 46, 45];
        long[] mask = [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1];
        using var result = session.Run(
        [
            new NamedTensor(EmbeddingModel.InputIdsName, TensorData.From(ids, batch, sequence)),
            new NamedTensor(EmbeddingModel.AttentionMaskName, TensorData.From(mask, batch, sequence)),
        ]);
        var embeddings = result[EmbeddingModel.OutputName];
        Assert.Equal([batch, 24L], embeddings.Shape);
        OrtFixture.AssertClose(model.Embed(ids, mask, batch, sequence), embeddings.GetSpan<float>(), 1e-5);
        for (var b = 0; b < batch; b++)
        {
            var row = embeddings.GetSpan<float>().Slice(b * 24, 24).ToArray();
            Assert.Equal(1.0, Math.Sqrt(row.Sum(v => (double)v * v)), 5);
        }

        // Padding does not change a row: the padded second row equals the same tokens run alone.
        using var alone = session.Run(
        [
            new NamedTensor(EmbeddingModel.InputIdsName, TensorData.From(new long[] { 10, 11 }, 1, 2)),
            new NamedTensor(EmbeddingModel.AttentionMaskName, TensorData.From(new long[] { 1, 1 }, 1, 2)),
        ]);
        OrtFixture.AssertClose(alone[0].GetSpan<float>(), embeddings.GetSpan<float>().Slice(24, 24), 1e-6);
    }

    [Fact]
    public async Task Session_from_file_and_async_load_behave_like_from_bytes()
    {
        var path = Path.Combine(Path.GetTempPath(), $"platform-mlp-{Guid.NewGuid():N}.onnx");
        await fixture.Mlp.ToModel().WriteAsync(path, TestContext.Current.CancellationToken);
        try
        {
            var input = OrtFixture.RandomInputs(2 * 16, 4);
            using var fromFile = fixture.Environment.CreateSession(path);
            using var fromFileAsync = await fixture.Environment.CreateSessionAsync(path, cancellationToken: TestContext.Current.CancellationToken);
            foreach (var session in new[] { fromFile, fromFileAsync })
            {
                using var result = session.Run([new NamedTensor("input", TensorData.From(input, 2, 16))]);
                OrtFixture.AssertClose(fixture.Mlp.Predict(input, 2), result[0].GetSpan<float>(), 1e-5);
            }
        }
        finally
        {
            File.Delete(path);
        }
    }
}
