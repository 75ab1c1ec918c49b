using System.Runtime.InteropServices;
using System.Text;

namespace Platform.OnnxRuntime.Native;

/// <summary>A null-terminated UTF-8 copy of a string in unmanaged memory, freed on dispose.</summary>
internal readonly unsafe struct NativeUtf8 : IDisposable
{
    public NativeUtf8(string value)
    {
        Pointer = (byte*)Marshal.StringToCoTaskMemUTF8(value);
    }

    public byte* Pointer { get; }

    public void Dispose()
    {
        if (Pointer != null)
        {
            Marshal.FreeCoTaskMem((IntPtr)Pointer);
        }
    }

    /// <summary>Reads a null-terminated UTF-8 string that ONNX Runtime owns.</summary>
    public static string Read(byte* value) => value == null ? string.Empty : Marshal.PtrToStringUTF8((IntPtr)value) ?? string.Empty;

    /// <summary>Reads UTF-8 bytes that are not null-terminated.</summary>
    public static string Read(ReadOnlySpan<byte> utf8) => Encoding.UTF8.GetString(utf8);
}
