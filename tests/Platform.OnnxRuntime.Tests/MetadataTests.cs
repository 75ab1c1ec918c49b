using Platform.OnnxModels;

namespace Platform.OnnxRuntime.Tests;

public sealed class MetadataTests(OrtFixture fixture)
{
    [Fact]
    public void Mlp_input_and_output_metadata()
    {
        var session = fixture.MlpSession;
        var input = Assert.Single(session.Inputs);
        Assert.Equal("input", input.Name);
        Assert.Equal(OnnxValueType.Tensor, input.ValueType);
        Assert.Equal(TensorElementType.Float, input.ElementType);
        Assert.Equal([-1L, 16L], input.Shape);
        Assert.Equal(["batch", ""], input.SymbolicShape);
        Assert.True(input.HasDynamicBatch);
        Assert.Equal(16, input.ElementsPerBatchItem);
        Assert.Equal("[batch, 16]", input.FormatShape());

        var output = Assert.Single(session.Outputs);
        Assert.Equal("probabilities", output.Name);
        Assert.Equal(TensorElementType.Float, output.ElementType);
        Assert.Equal([-1L, 5L], output.Shape);
        Assert.Same(output, session.GetOutput("probabilities"));
        Assert.Same(input, session.GetInput("input"));
    }

    [Fact]
    public void Multi_io_metadata_lists_every_input_and_output_with_types()
    {
        var session = fixture.MultiIoSession;
        Assert.Equal(["x", "ids", "scale"], session.Inputs.Select(i => i.Name));
        Assert.Equal([TensorElementType.Float, TensorElementType.Int64, TensorElementType.Double], session.Inputs.Select(i => i.ElementType));
        Assert.Equal([-1L, 3L], session.GetInput("ids").Shape);

        Assert.Equal(["y", "id_sum", "positive", "scale_squared"], session.Outputs.Select(o => o.Name));
        Assert.Equal(
            [TensorElementType.Float, TensorElementType.Int64, TensorElementType.Bool, TensorElementType.Double],
            session.Outputs.Select(o => o.ElementType));
        Assert.All(session.Outputs, o => Assert.Equal(-1L, o.Shape[0]));
    }

    [Fact]
    public void All_types_metadata_maps_every_onnx_type_number()
    {
        var session = fixture.AllTypesSession;
        Assert.Equal(AllTypesModel.Types.Count, session.Inputs.Count);
        foreach (var (type, suffix) in AllTypesModel.Types)
        {
            var input = session.GetInput(AllTypesModel.InputName(suffix));
            Assert.Equal((int)type, (int)input.ElementType);
            Assert.Equal([-1L, -1L], input.Shape);
            Assert.Equal(["batch", "n"], input.SymbolicShape);
            Assert.Null(input.ElementsPerBatchItem);
            Assert.Equal((int)type, (int)session.GetOutput(AllTypesModel.OutputName(suffix)).ElementType);
        }
    }

    [Fact]
    public void Unknown_metadata_name_lists_the_real_ones()
    {
        var error = Assert.Throws<ArgumentException>(() => fixture.MlpSession.GetInput("nope"));
        Assert.Contains("'input' Float [batch, 16]", error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => fixture.MlpSession.GetOutput("nope"));
    }

    [Fact]
    public void Free_dimension_override_fixes_the_batch_dimension()
    {
        using var session = fixture.Environment.CreateSession(fixture.Mlp.ToModel().Bytes, new InferenceSessionOptions
        {
            FreeDimensionOverrides = new Dictionary<string, long> { ["batch"] = 3 },
        });
        Assert.Equal([3L, 16L], session.Inputs[0].Shape);
    }
}
