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
        Assert.Throws<InferenceRequestException>(() => Validate(InferRequestReader.Read(Encoding.UTF8.GetBytes(json)))).Message;

    private static void Validate(InferRequest request) =>
        InferRequestValidator.Validate(request.Inputs, request.Outputs.Select(o => o.Name), Signature, "mlp");

    private const string Ids = """{"name":"ids","datatype":"INT64","shape":[1],"data":[7]}""";

    [Fact]
    public void AMatchingRequestPasses()
    {
        var request = InferRequestReader.Read(Encoding.UTF8.GetBytes(
            $$"""{"inputs":[{"name":"input","datatype":"FP32","shape":[3,4],"data":[1,2,3,4,5,6,7,8,9,10,11,12]},{{Ids}}],"outputs":[{"name":"probabilities"}]}"""));
        Validate(request);
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

    // What the worker checks of tensors arriving over the hop, with the same validator (data checked here, since no
    // decoder checked it before).
    public static TheoryData<InferTensor[], string[], string> HopCases => new()
    {
        { [Fp32("input", [2, 4], 32), Int64("ids", 1)], [], "" },
        { [Fp32("input", [2, 4], 28), Int64("ids", 1)], [], "input 'input': data is 28 bytes but shape [2,4] of FP32 needs 32" },
        { [Fp32("input", [1, 4], 16), Int64("ids", 1), Int64("ids", 1)], [], "input 'ids' appears more than once" },
        { [Fp32("input", [1, 4], 16), Int64("ids", 1)], ["probabilities", "probabilities"], "output 'probabilities' is requested more than once" },
        { [Fp32("input", [1, -4], 16), Int64("ids", 1)], [], "input 'input': shape [1,-4] does not match the model's [-1,4] (-1 = any size)" },
    };

    [Theory]
    [MemberData(nameof(HopCases))]
    public void TheWorkersChecksUseTheSameValidator(InferTensor[] inputs, string[] outputs, string expected)
    {
        void Run() => InferRequestValidator.Validate(inputs, outputs, Signature, "mlp", dataLabel: "data");
        if (expected.Length == 0)
        {
            Run();
        }
        else
        {
            Assert.Equal(expected, Assert.Throws<InferenceRequestException>(Run).Message);
        }
    }

    private static InferTensor Fp32(string name, long[] shape, int bytes) => new(name, DataType.Fp32, shape, new byte[bytes]);

    private static InferTensor Int64(string name, long count) => new(name, DataType.Int64, [count], new byte[count * 8]);
}
