using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Platform.OnnxRuntime.Initializers;

namespace Platform.OnnxRuntime;

/// <summary>
/// A model's initializers (its constant weights) read from the ONNX file, so that sessions can receive them as shared
/// initializers (<see cref="SessionOptions.AddInitializer"/>). ONNX Runtime then keeps one copy of each tensor for all
/// sessions that share it, and caches kernels' pre-packed layouts of them in a <see cref="PrePackedWeightsContainer"/>;
/// it only shares pre-packed weights of shared initializers.
/// </summary>
internal static class SharedInitializers
{
    /// <summary>An initializer's name, element type, shape and (pinned) bytes; <see cref="Identity"/> names the content.</summary>
    internal sealed record Tensor(string Name, TensorElementType ElementType, long[] Shape, byte[] Bytes, string Identity);

    /// <summary>Reads the initializers that can be shared: dense numeric tensors stored in the model file itself.</summary>
    public static IReadOnlyList<Tensor> Read(ModelSource model)
    {
        var bytes = model.Bytes ?? File.ReadAllBytes(model.Path!);
        ModelProto proto;
        try
        {
            proto = ModelProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException)
        {
            // Not a model this reader understands; ONNX Runtime reports what is wrong with it when loading.
            return [];
        }
        var result = new List<Tensor>();
        foreach (var initializer in proto.Graph?.Initializer ?? [])
        {
            if (ToTensor(initializer) is { } tensor)
            {
                result.Add(tensor);
            }
        }
        return result;
    }

    private static Tensor? ToTensor(TensorProto proto)
    {
        const int External = 1;
        var type = (TensorElementType)proto.DataType;
        var size = type.SizeInBytes();
        if (proto.DataLocation == External || size == 0 || string.IsNullOrEmpty(proto.Name))
        {
            return null;
        }
        var shape = proto.Dims.ToArray();
        long count;
        try
        {
            count = TensorData.CountElements(shape);
        }
        catch (OverflowException)
        {
            return null;
        }
        ReadOnlySpan<byte> data = proto.RawData.Length > 0 ? proto.RawData.Span : type switch
        {
            TensorElementType.Float => MemoryMarshal.AsBytes(proto.FloatData.ToArray().AsSpan()),
            TensorElementType.Double => MemoryMarshal.AsBytes(proto.DoubleData.ToArray().AsSpan()),
            TensorElementType.Int64 => MemoryMarshal.AsBytes(proto.Int64Data.ToArray().AsSpan()),
            TensorElementType.Int32 => MemoryMarshal.AsBytes(proto.Int32Data.ToArray().AsSpan()),
            // Narrower types packed into int32_data and the rest stay with ONNX Runtime's own copy.
            _ => [],
        };
        if (count == 0 || data.Length != count * size)
        {
            return null;
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(BitConverter.GetBytes(proto.DataType));
        hash.AppendData(MemoryMarshal.AsBytes(shape.AsSpan()));
        hash.AppendData(data);
        // On the pinned object heap: ONNX Runtime keeps the pointer for as long as any session uses the initializer.
        var pinned = GC.AllocateUninitializedArray<byte>(data.Length, pinned: true);
        data.CopyTo(pinned);
        return new Tensor(proto.Name, type, shape, pinned, $"{proto.Name}:{Convert.ToHexStringLower(hash.GetHashAndReset())}");
    }

    /// <summary>One shared initializer: a pinned copy of its bytes and the OrtValue over it, counted by the sessions using it.</summary>
    internal sealed class Entry : IDisposable
    {
        private readonly byte[] _buffer;

        private Entry(string identity, byte[] buffer, OrtValue value)
        {
            Identity = identity;
            _buffer = buffer;
            Value = value;
        }

        public string Identity { get; }

        public OrtValue Value { get; }

        public int Users { get; set; }

        public static unsafe Entry Create(Tensor tensor)
        {
            var buffer = tensor.Bytes;
            var pointer = (IntPtr)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(buffer));
            var value = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, tensor.ElementType.ToOrt(), tensor.Shape, pointer, buffer.Length);
            return new Entry(tensor.Identity, buffer, value);
        }

        public void Dispose()
        {
            Value.Dispose();
            GC.KeepAlive(_buffer);
        }
    }
}
