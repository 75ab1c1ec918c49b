namespace Platform.Inference.Protocol;

/// <summary>
/// A tensor in transit: name, type, shape and its elements as raw little-endian bytes in row-major
/// order (for <see cref="DataType.Bytes"/>, each element is a 4-byte length and its bytes).
/// </summary>
/// <param name="Name">Input or output name.</param>
/// <param name="DataType">Element type.</param>
/// <param name="Shape">Dimensions; all non-negative.</param>
/// <param name="Data">Element bytes.</param>
public sealed record InferTensor(string Name, DataType DataType, long[] Shape, ReadOnlyMemory<byte> Data)
{
    /// <summary>Number of elements the shape describes.</summary>
    public long ElementCount => Shape.Aggregate(1L, (a, d) => checked(a * d));
}
