using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Platform.Inference.Protocol;

/// <summary>
/// The one BYTES codec: a BYTES tensor's data is its elements in row-major order, each a 4-byte little-endian length
/// followed by that many bytes (the KServe binary-extension layout, used by REST binary, gRPC raw contents and the
/// worker hop alike).
/// </summary>
public static class BytesCodec
{
    /// <summary>Counts the elements of <paramref name="data"/>, checking every length prefix.</summary>
    /// <param name="what">How messages name the tensor, e.g. "input 'x'".</param>
    /// <param name="data">Encoded elements.</param>
    /// <exception cref="InferenceRequestException">A truncated length prefix, or a length running past the end.</exception>
    public static long Count(string what, ReadOnlySpan<byte> data)
    {
        long elements = 0;
        var offset = 0;
        while (offset < data.Length)
        {
            if (data.Length - offset < 4)
            {
                throw new InferenceRequestException($"{what}: BYTES element {elements} has a truncated 4-byte length prefix");
            }

            var length = BinaryPrimitives.ReadUInt32LittleEndian(data[offset..]);
            offset += 4;
            if (length > (uint)(data.Length - offset))
            {
                throw new InferenceRequestException($"{what}: BYTES element {elements} declares {length} bytes but only {data.Length - offset} remain");
            }

            offset += (int)length;
            elements++;
        }

        return elements;
    }

    /// <summary>Decodes well-formed data (see <see cref="Count"/>) into UTF-8 strings, as ONNX Runtime's string tensors hold them.</summary>
    /// <exception cref="InferenceRequestException">An element holds a NUL byte, which ONNX Runtime's strings cannot carry.</exception>
    public static string[] DecodeStrings(string what, ReadOnlySpan<byte> data, long count)
    {
        var result = new string[count];
        var offset = 0;
        for (var i = 0; i < result.Length; i++)
        {
            var element = ReadElement(data, ref offset);
            if (element.Contains((byte)0))
            {
                throw new InferenceRequestException($"{what}: BYTES element {i} contains a NUL byte, which ONNX Runtime string tensors cannot hold");
            }

            result[i] = Encoding.UTF8.GetString(element);
        }

        return result;
    }

    /// <summary>Encodes strings as UTF-8 elements.</summary>
    public static byte[] EncodeStrings(IReadOnlyList<string> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var total = 0;
        foreach (var value in values)
        {
            total = checked(total + 4 + Encoding.UTF8.GetByteCount(value));
        }

        var buffer = new byte[total];
        var offset = 0;
        foreach (var value in values)
        {
            var written = Encoding.UTF8.GetBytes(value, buffer.AsSpan(offset + 4));
            BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(offset), (uint)written);
            offset += 4 + written;
        }

        return buffer;
    }

    /// <summary>Appends one element to <paramref name="destination"/>.</summary>
    public static void Write(IBufferWriter<byte> destination, ReadOnlySpan<byte> element)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var span = destination.GetSpan(4 + element.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)element.Length);
        element.CopyTo(span[4..]);
        destination.Advance(4 + element.Length);
    }

    /// <summary>The element of well-formed data starting at <paramref name="offset"/>, which moves past it.</summary>
    public static ReadOnlySpan<byte> ReadElement(ReadOnlySpan<byte> data, scoped ref int offset)
    {
        var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(data[offset..]);
        var element = data.Slice(offset + 4, length);
        offset += 4 + length;
        return element;
    }

    /// <summary>Enumerates the elements of well-formed data without copying.</summary>
    public static Enumerator Enumerate(ReadOnlySpan<byte> data) => new(data);

    /// <summary>Walks the elements of well-formed BYTES data.</summary>
    public ref struct Enumerator
    {
        private readonly ReadOnlySpan<byte> _data;
        private int _offset;

        internal Enumerator(ReadOnlySpan<byte> data)
        {
            _data = data;
            _offset = 0;
            Current = default;
        }

        /// <summary>The current element's bytes.</summary>
        public ReadOnlySpan<byte> Current { get; private set; }

        /// <summary>This enumerator (for <c>foreach</c>).</summary>
        public readonly Enumerator GetEnumerator() => this;

        /// <summary>Advances to the next element.</summary>
        public bool MoveNext()
        {
            if (_offset >= _data.Length)
            {
                return false;
            }

            Current = ReadElement(_data, ref _offset);
            return true;
        }
    }
}
