using System.Collections;
using System.Runtime.InteropServices;
using Platform.OnnxRuntime.Native;

namespace Platform.OnnxRuntime;

/// <summary>
/// A tensor produced by ONNX Runtime (an owned <c>OrtValue</c>). Its data lives in native memory and is read
/// without copying through <see cref="GetBytes"/> / <see cref="GetSpan{T}"/>; spans must not be used after
/// <see cref="Dispose"/>.
/// </summary>
public sealed unsafe class OrtTensor : IDisposable
{
    private readonly OrtApi _api;
    private readonly ValueHandle _value;
    private readonly long[] _shape;
    private readonly byte* _data;
    private volatile bool _disposed;

    internal OrtTensor(OrtApi api, ValueHandle value, string name)
    {
        _api = api;
        _value = value;
        Name = name;
        var pointer = value.DangerousGetHandle();

        int valueType;
        api.Check(api.GetValueType(pointer, &valueType));
        int isTensor;
        api.Check(api.IsTensor(pointer, &isTensor));
        if (isTensor == 0)
        {
            throw new NotSupportedException(
                $"Output '{name}' is a {(OnnxValueType)valueType} value; Platform.OnnxRuntime only returns dense tensors.");
        }

        IntPtr info;
        api.Check(api.GetTensorTypeAndShape(pointer, &info));
        using var infoHandle = new TensorTypeAndShapeInfoHandle(api);
        infoHandle.Attach(info);
        ElementType = InferenceSession.ReadElementType(api, info);
        _shape = InferenceSession.ReadDimensions(api, info);
        nuint count;
        api.Check(api.GetTensorShapeElementCount(info, &count));
        ElementCount = (long)count;

        if (ElementType != TensorElementType.String)
        {
            void* data;
            api.Check(api.GetTensorMutableData(pointer, &data));
            _data = (byte*)data;
            ByteLength = ElementCount * ElementType.SizeInBytes();
        }
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

    /// <summary>
    /// Elements per item along dimension 0 (e.g. C for a [batch, C] output); used to split a batched result
    /// back into per-request results.
    /// </summary>
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
        return new ReadOnlySpan<byte>(_data, checked((int)ByteLength));
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
        var bytes = GetBytes();
        var batch = _shape.Length == 0 ? 1 : _shape[0];
        if (start < 0 || count < 0 || start + count > batch)
        {
            throw new ArgumentOutOfRangeException(nameof(start), $"Items [{start}, {start + count}) are outside dimension 0 of size {batch}.");
        }
        var itemBytes = ElementsPerBatchItem * ElementType.SizeInBytes();
        return bytes.Slice(checked((int)(start * itemBytes)), checked((int)(count * itemBytes)));
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
        var count = checked((int)ElementCount);
        if (count == 0)
        {
            return [];
        }

        using var lease = new HandleLease(_value);
        var pointer = _value.DangerousGetHandle();
        nuint total;
        _api.Check(_api.GetStringTensorDataLength(pointer, &total));
        var content = new byte[Math.Max(1, (int)total)];
        var offsets = new nuint[count];
        fixed (byte* contentPointer = content)
        fixed (nuint* offsetPointer = offsets)
        {
            _api.Check(_api.GetStringTensorContent(pointer, contentPointer, total, offsetPointer, (nuint)count));
        }

        var result = new string[count];
        for (var i = 0; i < count; i++)
        {
            var begin = (int)offsets[i];
            var end = i + 1 < count ? (int)offsets[i + 1] : (int)total;
            result[i] = NativeUtf8.Read(content.AsSpan(begin, end - begin));
        }
        return result;
    }

    /// <summary>Releases the native value; spans obtained earlier become invalid.</summary>
    public void Dispose()
    {
        _disposed = true;
        _value.Dispose();
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
