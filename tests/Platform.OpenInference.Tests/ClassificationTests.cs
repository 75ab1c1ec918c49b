using System.Runtime.InteropServices;
using System.Text;
using Google.Protobuf;
using Platform.Inference.OpenInference;
using Platform.Inference.OpenInference.Grpc;
using Platform.Inference.Protocol;

namespace Platform.OpenInference.Tests;

public sealed class ClassificationTests
{
    private static readonly ModelSignature Batched = new(
        [new TensorSpec("x", DataType.Fp32, [-1, 4])],
        [new TensorSpec("p", DataType.Fp32, [-1, 4]), new TensorSpec("ids", DataType.Int64, [3]), new TensorSpec("flags", DataType.Bool, [-1, 2])]);

    private static InferTensor Tensor<T>(string name, DataType type, long[] shape, params T[] values)
        where T : struct => new(name, type, shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

    private static string[] Strings(InferTensor tensor) => BytesCodec.DecodeStrings(tensor.Name, tensor.Data.Span, tensor.ElementCount);

    [Fact]
    public void EachBatchRowGivesItsTopClassesHighestFirstAsValueColonIndex()
    {
        var output = Tensor("p", DataType.Fp32, [2, 4], 0.1f, 0.5f, 0.9f, 0.2f, 0.7f, 0.05f, 0.05f, 0.2f);

        var classified = Assert.Single(OutputClassification.Apply([new RequestedOutput("p", null, 2)], [output], Batched));

        Assert.Equal(DataType.Bytes, classified.DataType);
        Assert.Equal([2L, 2], classified.Shape);
        Assert.Equal(["0.900000:2", "0.500000:1", "0.700000:0", "0.200000:3"], Strings(classified));
    }

    [Fact]
    public void TiesGoToTheLowerIndexAndNaNComesLast()
    {
        var output = Tensor("p", DataType.Fp32, [1, 4], float.NaN, 0.3f, 0.3f, 0.1f);

        var classified = OutputClassification.Apply([new RequestedOutput("p", null, 4)], [output], Batched)[0];

        Assert.Equal(["0.300000:1", "0.300000:2", "0.100000:3", "NaN:0"], Strings(classified));
    }

    [Fact]
    public void AnOutputWithoutABatchDimensionIsRankedWholeAndIntegersPrintExactly()
    {
        var ids = Tensor("ids", DataType.Int64, [3], long.MaxValue, -1L, long.MaxValue - 1);
        var untouched = Tensor("p", DataType.Fp32, [1, 4], 1f, 2f, 3f, 4f);

        var result = OutputClassification.Apply([new RequestedOutput("p", null), new RequestedOutput("ids", null, 2)], [untouched, ids], Batched);

        Assert.Same(untouched, result[0]);
        Assert.Equal([2L], result[1].Shape);
        Assert.Equal(["9223372036854775807:0", "9223372036854775806:2"], Strings(result[1]));
    }

    [Fact]
    public void MoreClassesThanTheOutputHasOrANonNumericOutputIsAClientError()
    {
        var output = Tensor("p", DataType.Fp32, [1, 4], 1f, 2f, 3f, 4f);
        Assert.Equal("output 'p': parameters.classification asks for 5 classes but the output has 4 per batch row",
            Assert.Throws<InferenceRequestException>(() => OutputClassification.Apply([new RequestedOutput("p", null, 5)], [output], Batched)).Message);
        Assert.Equal("output 'flags': parameters.classification needs a numeric output, and 'flags' is BOOL",
            Assert.Throws<InferenceRequestException>(() => OutputClassification.Check([new RequestedOutput("flags", null, 1)], Batched)).Message);
    }

    [Fact]
    public void RestAndGrpcReadTheParameterAsTritonClientsSendIt()
    {
        var rest = InferRequestReader.Read(Encoding.UTF8.GetBytes(
            """{"inputs":[],"outputs":[{"name":"p","parameters":{"classification":3,"binary_data":false}}]}"""));
        Assert.Equal(new RequestedOutput("p", false, 3), Assert.Single(rest.Outputs));

        var message = new ModelInferRequest { ModelName = "m" };
        var requested = new ModelInferRequest.Types.InferRequestedOutputTensor { Name = "p" };
        requested.Parameters["classification"] = new InferParameter { Int64Param = 3 };
        message.Outputs.Add(requested);
        Assert.Equal(new RequestedOutput("p", null, 3), Assert.Single(GrpcInferCodec.ReadRequest(message).Outputs));
        Assert.True(OutputClassification.Requested(rest.Outputs));
        Assert.False(OutputClassification.Requested([new RequestedOutput("p", null)]));
    }
}
