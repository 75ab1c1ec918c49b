using System.Text;
using Platform.Inference.OpenInference;
using Platform.Inference.Protocol;

namespace Platform.OpenInference.Tests;

public sealed class ValidationTests
{
    private static readonly ModelSignature Signature = new(
        [new TensorSpec("input", DataType.Fp32, [-1, 4]), new TensorSpec("ids", DataType.Int64, [-1])],
        [new TensorSpec("probabilities", DataType.Fp32, [-1, 3])]);

    private static string Error(string json) =>
        Assert.Throws<InferenceRequestException>(() =>
            InferRequestValidator.Validate(InferRequestReader.Read(Encoding.UTF8.GetBytes(json)), Signature, "mlp")).Message;

    private const string Ids = """{"name":"ids","datatype":"INT64","shape":[1],"data":[7]}""";

    [Fact]
    public void AMatchingRequestPasses()
    {
        var request = InferRequestReader.Read(Encoding.UTF8.GetBytes(
            $$"""{"inputs":[{"name":"input","datatype":"FP32","shape":[3,4],"data":[1,2,3,4,5,6,7,8,9,10,11,12]},{{Ids}}],"outputs":[{"name":"probabilities"}]}"""));
        InferRequestValidator.Validate(request, Signature, "mlp");
    }

    [Theory]
    [InlineData($$"""{"inputs":[{"name":"input","datatype":"FP64","shape":[1,4],"data":[1,2,3,4]},{{Ids}}]}""",
        "input 'input': datatype FP64 does not match the model's FP32")]
    [InlineData($$"""{"inputs":[{"name":"input","datatype":"FP32","shape":[1,3],"data":[1,2,3]},{{Ids}}]}""",
        "input 'input': shape [1,3] does not match the model's [-1,4] (-1 = any size)")]
    [InlineData($$"""{"inputs":[{"name":"input","datatype":"FP32","shape":[4],"data":[1,2,3,4]},{{Ids}}]}""",
        "input 'input': shape [4] does not match the model's [-1,4] (-1 = any size)")]
    [InlineData($$"""{"inputs":[{{Ids}}]}""",
        "missing input 'input' (FP32 [-1,4]); model 'mlp' expects 'input' FP32 [-1,4], 'ids' INT64 [-1]")]
    [InlineData($$"""{"inputs":[{"name":"inputs","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]},{{Ids}}]}""",
        "unknown input 'inputs'; model 'mlp' expects 'input' FP32 [-1,4], 'ids' INT64 [-1]")]
    [InlineData($$"""{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]},{{Ids}}],"outputs":[{"name":"logits"}]}""",
        "unknown output 'logits'; model 'mlp' has outputs 'probabilities'")]
    public void MismatchesNameTheTensor(string json, string expected) => Assert.Equal(expected, Error(json));
}
