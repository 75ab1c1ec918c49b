namespace Platform.OnnxRuntime;

/// <summary>Kind of an ONNX value (<c>ONNXType</c>).</summary>
public enum OnnxValueType
{
    /// <summary>Unknown.</summary>
    Unknown = 0,
    /// <summary>Dense tensor.</summary>
    Tensor = 1,
    /// <summary>Sequence of values.</summary>
    Sequence = 2,
    /// <summary>Map.</summary>
    Map = 3,
    /// <summary>Opaque custom type.</summary>
    Opaque = 4,
    /// <summary>Sparse tensor.</summary>
    SparseTensor = 5,
    /// <summary>Optional value.</summary>
    Optional = 6,
}

/// <summary>Description of a model input or output.</summary>
/// <param name="Name">Input or output name.</param>
/// <param name="ValueType">Tensor, sequence, map, ...; only tensors can be passed to or returned from <see cref="InferenceSession"/>.</param>
/// <param name="ElementType">Element type of a tensor; <see cref="TensorElementType.Undefined"/> for non-tensors.</param>
/// <param name="Shape">Dimensions, with -1 for a dynamic (symbolic or unknown) dimension.</param>
/// <param name="SymbolicShape">Per dimension, the symbolic name (ONNX <c>dim_param</c>, e.g. "batch"), or "" for none.</param>
public sealed record TensorMetadata(
    string Name,
    OnnxValueType ValueType,
    TensorElementType ElementType,
    IReadOnlyList<long> Shape,
    IReadOnlyList<string> SymbolicShape)
{
    /// <summary>Number of dimensions.</summary>
    public int Rank => Shape.Count;

    /// <summary>True when the first dimension is dynamic, i.e. requests can be concatenated along it.</summary>
    public bool HasDynamicBatch => Shape.Count > 0 && Shape[0] < 0;

    /// <summary>
    /// Elements per item along dimension 0 when all other dimensions are fixed (e.g. F for [batch, F]);
    /// null when any later dimension is dynamic.
    /// </summary>
    public long? ElementsPerBatchItem
    {
        get
        {
            long count = 1;
            for (var i = 1; i < Shape.Count; i++)
            {
                if (Shape[i] < 0)
                {
                    return null;
                }
                count *= Shape[i];
            }
            return count;
        }
    }

    /// <summary>Shape formatted like <c>[batch, 4]</c>, for messages and logs.</summary>
    public string FormatShape()
    {
        var parts = new string[Shape.Count];
        for (var i = 0; i < parts.Length; i++)
        {
            parts[i] = Shape[i] >= 0 ? Shape[i].ToString(System.Globalization.CultureInfo.InvariantCulture)
                : SymbolicShape[i].Length > 0 ? SymbolicShape[i] : "?";
        }
        return "[" + string.Join(", ", parts) + "]";
    }
}
