using System.Runtime.InteropServices;

namespace Platform.OnnxRuntime.Native;

/// <summary>
/// Base for SafeHandles over ONNX Runtime objects. A handle may keep another handle alive (a session keeps
/// its environment) so release order is right even when finalizers run in arbitrary order.
/// </summary>
internal abstract class OrtHandle : SafeHandle
{
    private OrtHandle? _dependency;

    protected OrtHandle(OrtApi api)
        : base(IntPtr.Zero, ownsHandle: true)
    {
        Api = api;
    }

    protected OrtApi Api { get; }

    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>Takes ownership of a freshly created native pointer, optionally pinning a dependency.</summary>
    public void Attach(IntPtr pointer, OrtHandle? dependency = null)
    {
        if (dependency is not null)
        {
            var added = false;
            dependency.DangerousAddRef(ref added);
            _dependency = dependency;
        }
        SetHandle(pointer);
    }

    protected sealed override bool ReleaseHandle()
    {
        Release(handle);
        _dependency?.DangerousRelease();
        return true;
    }

    protected abstract void Release(IntPtr pointer);
}

internal sealed unsafe class EnvHandle(OrtApi api) : OrtHandle(api)
{
    protected override void Release(IntPtr pointer) => Api.ReleaseEnv(pointer);
}

internal sealed unsafe class SessionOptionsHandle(OrtApi api) : OrtHandle(api)
{
    protected override void Release(IntPtr pointer) => Api.ReleaseSessionOptions(pointer);
}

internal sealed unsafe class SessionHandle(OrtApi api) : OrtHandle(api)
{
    /// <summary>
    /// Null-terminated UTF-8 input/output names passed to every Run; freed with the session so a Run that
    /// holds a reference to this handle can never see them freed underneath it.
    /// </summary>
    public List<IntPtr> OwnedNativeStrings { get; } = [];

    protected override void Release(IntPtr pointer)
    {
        Api.ReleaseSession(pointer);
        foreach (var text in OwnedNativeStrings)
        {
            Marshal.FreeCoTaskMem(text);
        }
        OwnedNativeStrings.Clear();
    }
}

internal sealed unsafe class ValueHandle(OrtApi api) : OrtHandle(api)
{
    protected override void Release(IntPtr pointer) => Api.ReleaseValue(pointer);
}

internal sealed unsafe class RunOptionsHandle(OrtApi api) : OrtHandle(api)
{
    protected override void Release(IntPtr pointer) => Api.ReleaseRunOptions(pointer);
}

internal sealed unsafe class MemoryInfoHandle(OrtApi api) : OrtHandle(api)
{
    protected override void Release(IntPtr pointer) => Api.ReleaseMemoryInfo(pointer);
}

internal sealed unsafe class TypeInfoHandle(OrtApi api) : OrtHandle(api)
{
    protected override void Release(IntPtr pointer) => Api.ReleaseTypeInfo(pointer);
}

internal sealed unsafe class TensorTypeAndShapeInfoHandle(OrtApi api) : OrtHandle(api)
{
    protected override void Release(IntPtr pointer) => Api.ReleaseTensorTypeAndShapeInfo(pointer);
}

internal sealed unsafe class CudaProviderOptionsHandle(OrtApi api) : OrtHandle(api)
{
    protected override void Release(IntPtr pointer) => Api.ReleaseCUDAProviderOptions(pointer);
}

/// <summary>Holds a reference on a handle for the length of a native call so a concurrent Dispose cannot free it.</summary>
internal readonly struct HandleLease : IDisposable
{
    private readonly SafeHandle? _handle;

    public HandleLease(SafeHandle handle)
    {
        var added = false;
        // Throws ObjectDisposedException once the owner has been disposed.
        handle.DangerousAddRef(ref added);
        _handle = added ? handle : null;
    }

    public void Dispose() => _handle?.DangerousRelease();
}
