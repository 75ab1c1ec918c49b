using System.Collections;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace Platform.OnnxRuntime;

/// <summary>
/// One output of a run. Either ONNX Runtime allocated it (an owned <see cref="OrtValue"/> in native memory) or it was
/// pre-allocated in a managed buffer that ONNX Runtime wrote into. Both are read without copying through
/// <see cref="GetBytes"/> / <see cref="GetSpan{T}"/>; spans must not be used after <see cref="Dispose"/>. A managed
/// buffer also hands out <see cref="ReadOnlyMemory{T}"/> slices that stay valid after disposal
/// (<see cref="TryGetBatchItemMemory"/>), which is how a batcher splits a batch without copying.
/// </summary>
public sealed class OrtTensor : IDisposable
{
    private readonly OrtValue? _value;
    private readonly byte[]? _buffer;
    private readonly long[] _shape;
    private volatile bool _disposed;

    /// <summary>Takes ownership of an ONNX Runtime value.</summary>
    internal OrtTensor(OrtValue value, string name)
    {
        Name = name;
        if (!value.IsTensor)
        {
            var kind = value.OnnxType;
            value.Dispose();
            throw new NotSupportedException($"Output '{name}' is a {kind} value; Platform.OnnxRuntime only returns dense tensors.");
        }
        _value = value;
        var info = value.GetTensorTypeAndShape();
        ElementType = TensorElementTypeExtensions.FromOrt(info.ElementDataType);
        _shape = info.Shape;
        ElementCount = info.ElementCount;
        ByteLength = ElementType == TensorElementType.String ? 0 : ElementCount * ElementType.SizeInBytes();
    }

    /// <summary>Wraps a managed buffer that ONNX Runtime wrote a pre-allocated output into.</summary>
    internal OrtTensor(string name, TensorElementType elementType, long[] shape, byte[] buffer)
    {
        Name = name;
        ElementType = elementType;
        _shape = shape;
        _buffer = buffer;
        ElementCount = TensorData.CountElements(shape);
        ByteLength = buffer.Length;
    }

    /// <summary>Output name.</summary>
    public string Name { get; }

    /// <summary>Element type.</summary>
    public TensorElementType ElementType { get; }

    /// <summary>Concrete shape of this result.</summary>
    public IReadOnlyList<long> Shape => _shape;

    /// <summary>Number of elements.</summary>
    public long ElementCount { get; }

    /// <summary>Size of the element data in bytes; 0 for string tensors.</summary>
    public long ByteLength { get; }

    /// <summary>Whether the data lives in a managed buffer (a pre-allocated output) rather than ONNX Runtime's memory.</summary>
    public bool IsManaged => _buffer is not null;

    /// <summary>Elements per item along dimension 0 (e.g. C for a [batch, C] output), for splitting a batched result.</summary>
    public long ElementsPerBatchItem
    {
        get
        {
            long count = 1;
            for (var i = 1; i < _shape.Length; i++)
            {
                count *= _shape[i];
            }
            return count;
        }
    }

    /// <summary>The raw element bytes, row-major. Valid until the tensor is disposed.</summary>
    /// <exception cref="InvalidOperationException">This is a string tensor.</exception>
    public ReadOnlySpan<byte> GetBytes()
    {
        ThrowIfDisposed();
        if (ElementType == TensorElementType.String)
        {
            throw new InvalidOperationException($"Output '{Name}' is a string tensor; use GetStrings().");
        }
        return _buffer is not null ? _buffer : _value!.GetTensorMutableRawData();
    }

    /// <summary>The elements as <typeparamref name="T"/>, which must match <see cref="ElementType"/> (e.g. float for Float, Half for Float16, bool for Bool).</summary>
    public ReadOnlySpan<T> GetSpan<T>() where T : unmanaged
    {
        var requested = TensorElementTypeExtensions.ElementTypeOf<T>();
        if (requested != ElementType)
        {
            throw new InvalidOperationException($"Output '{Name}' has element type {ElementType}, not {requested} ({typeof(T).Name}).");
        }
        return MemoryMarshal.Cast<byte, T>(GetBytes());
    }

    /// <summary>Copies the elements into a new array.</summary>
    public T[] ToArray<T>() where T : unmanaged => GetSpan<T>().ToArray();

    /// <summary>
    /// The bytes of items <paramref name="start"/> .. <paramref name="start"/>+<paramref name="count"/> along
    /// dimension 0, for splitting a batched output back to the requests that formed it.
    /// </summary>
    public ReadOnlySpan<byte> GetBatchItemBytes(long start, long count)
    {
        var (offset, length) = BatchItemRange(start, count);
        return GetBytes().Slice(offset, length);
    }

    /// <summary>
    /// For a managed (pre-allocated) output, the memory of items <paramref name="start"/> ..
    /// <paramref name="start"/>+<paramref name="count"/> along dimension 0, without copying. Unlike spans it stays valid
    /// after the tensor is disposed. False for outputs in ONNX Runtime's memory, which must be copied out.
    /// </summary>
    public bool TryGetBatchItemMemory(long start, long count, out ReadOnlyMemory<byte> memory)
    {
        ThrowIfDisposed();
        if (_buffer is null)
        {
            memory = default;
            return false;
        }
        var (offset, length) = BatchItemRange(start, count);
        memory = _buffer.AsMemory(offset, length);
        return true;
    }

    /// <summary>Reads all elements of a string tensor (row-major).</summary>
    /// <exception cref="InvalidOperationException">This is not a string tensor.</exception>
    public string[] GetStrings()
    {
        ThrowIfDisposed();
        if (ElementType != TensorElementType.String)
        {
            throw new InvalidOperationException($"Output '{Name}' has element type {ElementType}, not String.");
        }
        return ElementCount == 0 ? [] : _value!.GetStringTensorAsArray();
    }

    /// <summary>Releases ONNX Runtime's memory; spans obtained earlier become invalid.</summary>
    public void Dispose()
    {
        _disposed = true;
        _value?.Dispose();
    }

    private (int Offset, int Length) BatchItemRange(long start, long count)
    {
        if (ElementType == TensorElementType.String)
        {
            throw new InvalidOperationException($"Output '{Name}' is a string tensor; use GetStrings().");
        }
        var batch = _shape.Length == 0 ? 1 : _shape[0];
        if (start < 0 || count < 0 || start + count > batch)
        {
            throw new ArgumentOutOfRangeException(nameof(start), $"Items [{start}, {start + count}) are outside dimension 0 of size {batch}.");
        }
        var itemBytes = ElementsPerBatchItem * ElementType.SizeInBytes();
        return (checked((int)(start * itemBytes)), checked((int)(count * itemBytes)));
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);
}

/// <summary>The outputs of one <see cref="InferenceSession"/> run, in the order requested. Disposing it disposes every tensor.</summary>
public sealed class InferenceResult : IReadOnlyList<OrtTensor>, IDisposable
{
    private readonly OrtTensor[] _tensors;

    internal InferenceResult(OrtTensor[] tensors)
    {
        _tensors = tensors;
    }

    /// <inheritdoc />
    public int Count => _tensors.Length;

    /// <inheritdoc />
    public OrtTensor this[int index] => _tensors[index];

    /// <summary>The output with the given name.</summary>
    /// <exception cref="KeyNotFoundException">No output of that name was requested.</exception>
    public OrtTensor this[string name]
    {
        get
        {
            foreach (var tensor in _tensors)
            {
                if (tensor.Name == name)
                {
                    return tensor;
                }
            }
            throw new KeyNotFoundException(
                $"No output named '{name}' in this result; it has: {string.Join(", ", _tensors.Select(t => t.Name))}.");
        }
    }

    /// <inheritdoc />
    public IEnumerator<OrtTensor> GetEnumerator() => ((IEnumerable<OrtTensor>)_tensors).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Disposes every output tensor.</summary>
    public void Dispose()
    {
        foreach (var tensor in _tensors)
        {
            tensor.Dispose();
        }
    }
}
