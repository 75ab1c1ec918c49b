using Platform.OnnxModels;

namespace Platform.OnnxRuntime.Tests;

public sealed class ErrorTests(OrtFixture fixture)
{
    [Fact]
    public void Corrupt_model_bytes_report_onnx_runtime_code_and_message()
    {
        var bytes = fixture.Mlp.ToModel().Bytes.AsSpan(0, 200).ToArray();
        var error = Assert.Throws<OnnxRuntimeException>(() => fixture.Environment.CreateSession(bytes));
        Assert.StartsWith("[ErrorCode:InvalidProtobuf]", error.Message, StringComparison.Ordinal);
        Assert.Contains("protobuf parsing failed", error.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Garbage_bytes_are_rejected()
    {
        var error = Assert.Throws<OnnxRuntimeException>(() => fixture.Environment.CreateSession(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0x01 }));
        Assert.StartsWith("[ErrorCode:", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_model_file_reports_no_such_file()
    {
        var error = Assert.Throws<OnnxRuntimeException>(() => fixture.Environment.CreateSession("/nonexistent/model.onnx"));
        Assert.StartsWith("[ErrorCode:NoSuchFile]", error.Message, StringComparison.Ordinal);
        Assert.Contains("/nonexistent/model.onnx", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Invalid_graph_is_reported_by_onnx_runtime()
    {
        var graph = new OnnxGraphBuilder("broken");
        graph.AddInput("a", OnnxDataType.Float, "batch", 2);
        graph.AddNode("NoSuchOperator", ["a"], ["b"]);
        graph.AddOutput("b", OnnxDataType.Float, "batch", 2);
        var error = Assert.Throws<OnnxRuntimeException>(() => fixture.Environment.CreateSession(graph.ToBytes()));
        Assert.Contains("NoSuchOperator", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Empty_model_bytes_are_rejected_before_onnx_runtime()
    {
        Assert.Throws<ArgumentException>(() => fixture.Environment.CreateSession(Array.Empty<byte>()));
    }

    [Fact]
    public void Wrong_input_name_lists_the_model_inputs()
    {
        var error = Assert.Throws<ArgumentException>(() =>
            fixture.MlpSession.Run([new NamedTensor("features", TensorData.From(new float[16], 1, 16))]));
        Assert.Contains("no input named 'features'", error.Message, StringComparison.Ordinal);
        Assert.Contains("'input' Float [batch, 16]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Wrong_shape_is_explained()
    {
        var error = Assert.Throws<ArgumentException>(() =>
            fixture.MlpSession.Run([new NamedTensor("input", TensorData.From(new float[2 * 15], 2, 15))]));
        Assert.Contains("expects shape [batch, 16]", error.Message, StringComparison.Ordinal);
        Assert.Contains("[2, 15]", error.Message, StringComparison.Ordinal);

        var rank = Assert.Throws<ArgumentException>(() =>
            fixture.MlpSession.Run([new NamedTensor("input", TensorData.From(new float[16], 16))]));
        Assert.Contains("[16]", rank.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Wrong_element_type_is_explained()
    {
        var error = Assert.Throws<ArgumentException>(() =>
            fixture.MlpSession.Run([new NamedTensor("input", TensorData.From(new double[16], 1, 16))]));
        Assert.Contains("expects element type Float, but Double", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_and_duplicate_inputs_are_explained()
    {
        var missing = Assert.Throws<ArgumentException>(() =>
            fixture.MultiIoSession.Run([new NamedTensor("x", TensorData.From(new float[4], 1, 4))]));
        Assert.Contains("Missing model input(s): 'ids' Int64 [batch, 3], 'scale' Double [batch, 1]", missing.Message, StringComparison.Ordinal);

        var input = new NamedTensor("input", TensorData.From(new float[16], 1, 16));
        var duplicate = Assert.Throws<ArgumentException>(() => fixture.MlpSession.Run([input, input]));
        Assert.Contains("more than once", duplicate.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_or_repeated_output_names_are_explained()
    {
        var input = new NamedTensor("input", TensorData.From(new float[16], 1, 16));
        var unknown = Assert.Throws<ArgumentException>(() => fixture.MlpSession.Run([input], ["logits"]));
        Assert.Contains("no output named 'logits'", unknown.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => fixture.MlpSession.Run([input], ["probabilities", "probabilities"]));
    }

    [Fact]
    public void Tensor_data_validates_lengths_and_dimensions()
    {
        var length = Assert.Throws<ArgumentException>(() => TensorData.From(new float[5], 2, 3));
        Assert.Contains("needs 24 bytes", length.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => TensorData.From(new float[6], -1, 6));
        Assert.Throws<ArgumentException>(() => TensorData.FromBytes(TensorElementType.String, new byte[4], 1));
        Assert.Throws<ArgumentException>(() => TensorData.FromStrings(["a"], 2));
        Assert.Throws<ArgumentException>(() => TensorData.FromStrings([null!], 1));
    }

    [Fact]
    public void Runtime_kernel_failure_surfaces_onnx_runtime_error()
    {
        // Token id 500 is outside the 50-row table: only the Gather kernel can notice, at run time.
        var model = EmbeddingModel.Create(new EmbeddingModelOptions { VocabularySize = 50, TokenDimension = 4, OutputDimension = 8 });
        using var session = fixture.Environment.CreateSession(model.ToModel().Bytes);
        var error = Assert.Throws<OnnxRuntimeException>(() => session.Run(
        [
            new NamedTensor(EmbeddingModel.InputIdsName, TensorData.From(new long[] { 1, 500 }, 1, 2)),
            new NamedTensor(EmbeddingModel.AttentionMaskName, TensorData.From(new long[] { 1, 1 }, 1, 2)),
        ]));
        Assert.Contains("500", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Disposed_session_and_tensor_refuse_use()
    {
        using var session = fixture.Environment.CreateSession(fixture.Mlp.ToModel().Bytes);
        var input = new NamedTensor("input", TensorData.From(new float[16], 1, 16));
        var result = session.Run([input]);
        session.Dispose();
        Assert.Throws<ObjectDisposedException>(() => session.Run([input]));

        // The output outlives the session object: ORT-allocated values are independent of it.
        Assert.Equal(5, result[0].GetSpan<float>().Length);
        result.Dispose();
        Assert.Throws<ObjectDisposedException>(() => result[0].GetBytes());
        result.Dispose();
    }
}
