using System.Runtime.InteropServices;
using Platform.ModelRegistry;

namespace Platform.Registry.Tests;

/// <summary>
/// The shape and datatype rules shared by AdminApi (validating bindings) and InferenceApi (building the tensor), on
/// the cases the whole-platform tests do not reach: inputs without a batch dimension, dynamic non-batch dimensions,
/// range edges of the integer and half types.
/// </summary>
public sealed class FeatureBindingRulesTests
{
    private static ModelVersionRecord Version(params ModelTensorSpec[] inputs) =>
        new("m", 3, new string('0', 64), 1, inputs, [], ModelVersionStates.Active, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch);

    private static (long[] Shape, byte[] Data, string? Error) Build(ModelTensorSpec spec, double[] values, int rows = 1)
    {
        var ok = FeatureBindingRules.TryBuild(spec, values, rows, out var shape, out var data, out var error);
        Assert.Equal(ok, error is null);
        return (shape, data, error);
    }

    [Fact]
    public void ShapesFollowTheDeclaredDimensions()
    {
        // Batch dimension: one row per request row, the vector repeated.
        var batched = Build(new ModelTensorSpec("x", "FP32", [-1, 2, 2]), [1, 2, 3, 4], rows: 2);
        Assert.Equal([2L, 2, 2], batched.Shape);
        Assert.Equal([1f, 2, 3, 4, 1, 2, 3, 4], MemoryMarshal.Cast<byte, float>(batched.Data).ToArray());

        // No batch dimension: the declared shape, whatever the rows.
        var fixedShape = Build(new ModelTensorSpec("x", "FP64", [3]), [1, 2, 3], rows: 5);
        Assert.Equal([3L], fixedShape.Shape);
        Assert.Equal([1.0, 2, 3], MemoryMarshal.Cast<byte, double>(fixedShape.Data).ToArray());

        // One dynamic non-batch dimension takes the vector's length over the fixed ones.
        var dynamic = Build(new ModelTensorSpec("x", "INT32", [-1, -1, 2]), [1, 2, 3, 4, 5, 6]);
        Assert.Equal([1L, 3, 2], dynamic.Shape);
        Assert.Equal("has 5 values but input 'x' [-1,-1,2] needs a positive multiple of 2 per row",
            Build(new ModelTensorSpec("x", "INT32", [-1, -1, 2]), [1, 2, 3, 4, 5]).Error);
        Assert.Equal("has 3 values but input 'x' [-1,4] needs 4 per row", Build(new ModelTensorSpec("x", "FP32", [-1, 4]), [1, 2, 3]).Error);
        Assert.Null(FeatureBindingRules.ElementsPerRow(new ModelTensorSpec("x", "FP32", [-1, -1])));
        Assert.Equal(12, FeatureBindingRules.ElementsPerRow(new ModelTensorSpec("x", "FP32", [-1, 3, 4])));
    }

    [Fact]
    public void ValuesConvertExactlyOrNotAtAll()
    {
        Assert.Equal(new byte[] { 255, 0 }, Build(new ModelTensorSpec("x", "UINT8", [-1, 2]), [255, 0]).Data);
        Assert.Equal(new byte[] { 0x80, 127 }, Build(new ModelTensorSpec("x", "INT8", [-1, 2]), [-128, 127]).Data);
        Assert.Equal([(Half)65504, (Half)(-0.5)], MemoryMarshal.Cast<byte, Half>(Build(new ModelTensorSpec("x", "FP16", [-1, 2]), [65504, -0.5]).Data).ToArray());
        Assert.Equal([long.MinValue, 1L << 53], MemoryMarshal.Cast<byte, long>(Build(new ModelTensorSpec("x", "INT64", [-1, 2]), [-9223372036854775808d, 1L << 53]).Data).ToArray());
        Assert.Equal([ulong.MaxValue - 2047], MemoryMarshal.Cast<byte, ulong>(Build(new ModelTensorSpec("x", "UINT64", [-1, 1]), [18446744073709549568d]).Data).ToArray());

        Assert.Equal("has value 256 at index 1 that is out of the range of UINT8", Build(new ModelTensorSpec("x", "UINT8", [-1, 2]), [1, 256]).Error);
        Assert.Equal("has value -1 at index 0 that is out of the range of UINT32", Build(new ModelTensorSpec("x", "UINT32", [-1, 1]), [-1]).Error);
        Assert.Equal("has value 9.223372036854776E+18 at index 0 that is out of the range of INT64",
            Build(new ModelTensorSpec("x", "INT64", [-1, 1]), [9223372036854775808d]).Error);
        Assert.Equal("has value 70000 at index 0 that is out of the range of FP16", Build(new ModelTensorSpec("x", "FP16", [-1, 1]), [70000]).Error);
        Assert.Equal("has value 0.5 at index 0 that is not an integer, which INT16 needs", Build(new ModelTensorSpec("x", "INT16", [-1, 1]), [0.5]).Error);
        Assert.Equal("has value NaN at index 0 that is not a finite number", Build(new ModelTensorSpec("x", "FP32", [-1, 1]), [double.NaN]).Error);
    }

    [Fact]
    public void ValidationNamesTheBindingAndField()
    {
        var version = Version(
            new ModelTensorSpec("x", "FP32", [-1, 4]),
            new ModelTensorSpec("img", "FP32", [-1, -1, -1]),
            new ModelTensorSpec("flag", "BOOL", [-1, 1]),
            new ModelTensorSpec("empty", "FP32", [-1, 0]));
        Assert.Null(FeatureBindingRules.Validate(version, [new FeatureBinding("x", "user:profile.v2", [0, 0, 0, 0])]));
        Assert.Equal("bindings[0].input: model 'm' version 3 has no input 'y' (inputs: 'x', 'img', 'flag', 'empty')",
            FeatureBindingRules.Validate(version, [new FeatureBinding("y", "s")]));
        Assert.Equal("bindings[1].input: input 'img' has shape [-1,-1,-1] with more than one dynamic dimension besides the batch; a feature vector cannot fill it",
            FeatureBindingRules.Validate(version, [new FeatureBinding("x", "s"), new FeatureBinding("img", "s")]));
        Assert.Equal("bindings[0].input: input 'empty' has shape [-1,0] with no elements per row",
            FeatureBindingRules.Validate(version, [new FeatureBinding("empty", "s")]));
        Assert.StartsWith("bindings[0].input: input 'flag' is BOOL", FeatureBindingRules.Validate(version, [new FeatureBinding("flag", "s")]), StringComparison.Ordinal);
        Assert.Equal("bindings[0].featureSet: must not be empty", FeatureBindingRules.Validate(version, [new FeatureBinding("x", "")]));
        Assert.Equal("bindings[0].default: has 2 values but input 'x' [-1,4] needs 4 per row",
            FeatureBindingRules.Validate(version, [new FeatureBinding("x", "s", [1, 2])]));
        Assert.Equal("bindings[0].default[3]: is out of the range of FP32",
            FeatureBindingRules.Validate(version, [new FeatureBinding("x", "s", [0, 0, 0, 1e39])]));
        Assert.Equal("bindings[0].featureSet: 'a/b' must be 1-128 characters of letters, digits, '_', '-', '.', ':'",
            FeatureBindingRules.Validate(version, [new FeatureBinding("x", "a/b")]));
        Assert.NotNull(FeatureBindingRules.ValidateKey(new string('a', 129)));
        Assert.Null(FeatureBindingRules.ValidateKey(new string('a', 128)));
    }
}
