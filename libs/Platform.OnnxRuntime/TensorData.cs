using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Platform.OnnxRuntime;

/// <summary>A named tensor passed to (or, with pre-allocated outputs, filled by) <see cref="InferenceSession.Run(IReadOnlyList{NamedTensor}, IReadOnlyList{string}?, CancellationToken)"/>.</summary>
/// <param name="Name">Model input or output name.</param>
/// <param name="Data">Element type, shape and memory of the tensor.</param>
public sealed record NamedTensor(string Name, TensorData Data);

/// <summary>
/// A tensor over caller-owned memory: element type, shape and the row-major element bytes. Nothing is copied:
/// the memory is pinned for the duration of a run and handed to ONNX Runtime directly, so it must not be
/// changed while a run that uses it is in progress. String tensors hold managed strings instead.
/// </summary>
public sealed class TensorData
{
    private readonly long[] _shape;

    private TensorData(TensorElementType elementType, long[] shape, ReadOnlyMemory<byte> bytes, IReadOnlyList<string>? strings)
    {
        ElementType = elementType;
        _shape = shape;
        ElementCount = CountElements(shape);
        Bytes = bytes;
        Strings = strings;
    }

    /// <summary>Element type.</summary>
    public TensorElementType ElementType { get; }

    /// <summary>Shape; every dimension is concrete (non-negative).</summary>
    public IReadOnlyList<long> Shape => _shape;

    /// <summary>Number of elements (product of <see cref="Shape"/>; 1 for a scalar).</summary>
    public long ElementCount { get; }

    /// <summary>Element bytes in row-major order; empty for string tensors.</summary>
    public ReadOnlyMemory<byte> Bytes { get; }

    /// <summary>Elements of a string tensor in row-major order; null for other types.</summary>
    public IReadOnlyList<string>? Strings { get; }

    internal long[] ShapeArray => _shape;

    /// <summary>Wraps raw element bytes of a non-string type.</summary>
    /// <exception cref="ArgumentException">The byte length does not equal element count times element size.</exception>
    public static TensorData FromBytes(TensorElementType elementType, ReadOnlyMemory<byte> bytes, params ReadOnlySpan<long> shape)
    {
        var elementSize = elementType.SizeInBytes();
        if (elementSize == 0)
        {
            throw new ArgumentException(
                elementType == TensorElementType.String
                    ? "String tensors are created with TensorData.FromStrings."
                    : $"Element type {elementType} is not supported.", nameof(elementType));
        }
        var shapeArray = ValidateShape(shape);
        var count = CountElements(shapeArray);
        if (bytes.Length != count * elementSize)
        {
            throw new ArgumentException(
                $"A {elementType} tensor of shape [{string.Join(", ", shapeArray)}] needs {count * elementSize} bytes " +
                $"({count} elements x {elementSize}), but {bytes.Length} were given.", nameof(bytes));
        }
        return new TensorData(elementType, shapeArray, bytes, null);
    }

    /// <summary>
    /// Wraps typed memory (float, double, Half or <see cref="Microsoft.ML.OnnxRuntime.Float16"/>,
    /// <see cref="Microsoft.ML.OnnxRuntime.BFloat16"/>, sbyte, short, int, long, byte, ushort, uint, ulong or bool) without copying.
    /// </summary>
    public static TensorData From<T>(ReadOnlyMemory<T> data, params ReadOnlySpan<long> shape) where T : unmanaged
    {
        var elementType = TensorElementTypeExtensions.ElementTypeOf<T>();
        ReadOnlyMemory<byte> bytes = typeof(T) == typeof(byte)
            ? Unsafe.As<ReadOnlyMemory<T>, ReadOnlyMemory<byte>>(ref data)
            : new ByteViewMemoryManager<T>(MemoryMarshal.AsMemory(data)).Memory;
        return FromBytes(elementType, bytes, shape);
    }

    /// <summary>Wraps writable memory without copying (e.g. a pre-allocated output buffer); see <see cref="From{T}(ReadOnlyMemory{T}, ReadOnlySpan{long})"/>.</summary>
    public static TensorData From<T>(Memory<T> data, params ReadOnlySpan<long> shape) where T : unmanaged =>
        From((ReadOnlyMemory<T>)data, shape);

    /// <summary>Wraps an array without copying; see <see cref="From{T}(ReadOnlyMemory{T}, ReadOnlySpan{long})"/>.</summary>
    public static TensorData From<T>(T[] data, params ReadOnlySpan<long> shape) where T : unmanaged =>
        From(new ReadOnlyMemory<T>(data), shape);

    /// <summary>Creates a string tensor; ONNX Runtime stores the strings UTF-8 encoded.</summary>
    public static TensorData FromStrings(IReadOnlyList<string> values, params ReadOnlySpan<long> shape)
    {
        ArgumentNullException.ThrowIfNull(values);
        var shapeArray = ValidateShape(shape);
        var count = CountElements(shapeArray);
        if (values.Count != count)
        {
            throw new ArgumentException(
                $"A string tensor of shape [{string.Join(", ", shapeArray)}] needs {count} strings, but {values.Count} were given.",
                nameof(values));
        }
        for (var i = 0; i < values.Count; i++)
        {
            if (values[i] is null)
            {
                throw new ArgumentException($"String element {i} is null.", nameof(values));
            }
        }
        return new TensorData(TensorElementType.String, shapeArray, ReadOnlyMemory<byte>.Empty, values);
    }

    private static long[] ValidateShape(ReadOnlySpan<long> shape)
    {
        foreach (var dim in shape)
        {
            if (dim < 0)
            {
                throw new ArgumentException($"Tensor dimensions must be concrete (>= 0); got [{string.Join(", ", shape.ToArray())}].", nameof(shape));
            }
        }
        return shape.ToArray();
    }

    internal static long CountElements(ReadOnlySpan<long> shape)
    {
        long count = 1;
        foreach (var dim in shape)
        {
            count = checked(count * dim);
        }
        return count;
    }

    /// <summary>Presents a <see cref="Memory{T}"/> of an unmanaged type as bytes without copying, pinning the original.</summary>
    private sealed class ByteViewMemoryManager<T>(Memory<T> memory) : MemoryManager<byte> where T : unmanaged
    {
        public override Span<byte> GetSpan() => MemoryMarshal.AsBytes(memory.Span);

        public override unsafe MemoryHandle Pin(int elementIndex = 0)
        {
            var size = Unsafe.SizeOf<T>();
            if (elementIndex % size != 0)
            {
                // Slices handed to ONNX Runtime always start on an element boundary.
                throw new ArgumentOutOfRangeException(nameof(elementIndex), "Pinned offsets must be element-aligned.");
            }
            return memory[(elementIndex / size)..].Pin();
        }

        public override void Unpin()
        {
            // The MemoryHandle returned by Pin comes from the underlying memory and unpins it itself.
        }

        protected override void Dispose(bool disposing)
        {
        }
    }
}
