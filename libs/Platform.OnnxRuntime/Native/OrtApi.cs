using System.Runtime.InteropServices;

namespace Platform.OnnxRuntime.Native;

/// <summary>
/// The subset of ONNX Runtime's <c>OrtApi</c> function table that Platform uses, read once from the
/// table returned by <c>OrtGetApiBase()->GetApi(30)</c>.
/// </summary>
/// <remarks>
/// OrtApi is a C struct of function pointers whose order is frozen per API version, so each entry is
/// read at <c>index * IntPtr.Size</c>. The indices are the zero-based positions in
/// <c>include/onnxruntime/core/session/onnxruntime_c_api.h</c>. Every pointer read here is exercised
/// by the test suite, which is what catches a wrong index.
/// All calls use the platform C calling convention (<c>ORT_API_CALL</c> is empty off Windows).
/// </remarks>
internal sealed unsafe class OrtApi
{
    /// <summary>The OrtApi version requested from the library (ORT 1.30 exposes version 30).</summary>
    public const uint ApiVersion = 30;

    private readonly IntPtr* _table;

    public OrtApi(IntPtr apiBase, string libraryPath)
    {
        // OrtApiBase = { const OrtApi* (*GetApi)(uint32_t); const char* (*GetVersionString)(void); }
        var baseTable = (IntPtr*)apiBase;
        var getApi = (delegate* unmanaged[Cdecl]<uint, IntPtr>)baseTable[0];
        var getVersion = (delegate* unmanaged[Cdecl]<byte*>)baseTable[1];
        Version = Marshal.PtrToStringUTF8((IntPtr)getVersion()) ?? string.Empty;

        var api = getApi(ApiVersion);
        if (api == IntPtr.Zero)
        {
            throw new OnnxRuntimeException(OrtErrorCode.Fail,
                $"ONNX Runtime at '{libraryPath}' (version {Version}) does not provide OrtApi version {ApiVersion}; " +
                "Platform needs ONNX Runtime 1.30 or newer. Run eng/install.sh to install the expected library.");
        }

        _table = (IntPtr*)api;

        CreateStatus = (delegate* unmanaged[Cdecl]<int, byte*, IntPtr>)Slot(0);
        GetErrorCode = (delegate* unmanaged[Cdecl]<IntPtr, int>)Slot(1);
        GetErrorMessage = (delegate* unmanaged[Cdecl]<IntPtr, byte*>)Slot(2);
        CreateEnv = (delegate* unmanaged[Cdecl]<int, byte*, IntPtr*, IntPtr>)Slot(3);
        CreateSession = (delegate* unmanaged[Cdecl]<IntPtr, byte*, IntPtr, IntPtr*, IntPtr>)Slot(7);
        CreateSessionFromArray = (delegate* unmanaged[Cdecl]<IntPtr, void*, nuint, IntPtr, IntPtr*, IntPtr>)Slot(8);
        Run = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr, IntPtr*, IntPtr*, nuint, IntPtr*, nuint, IntPtr*, IntPtr>)Slot(9);
        CreateSessionOptions = (delegate* unmanaged[Cdecl]<IntPtr*, IntPtr>)Slot(10);
        SetSessionExecutionMode = (delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr>)Slot(13);
        EnableMemPattern = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr>)Slot(16);
        DisableMemPattern = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr>)Slot(17);
        EnableCpuMemArena = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr>)Slot(18);
        DisableCpuMemArena = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr>)Slot(19);
        SetSessionLogId = (delegate* unmanaged[Cdecl]<IntPtr, byte*, IntPtr>)Slot(20);
        SetSessionLogSeverityLevel = (delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr>)Slot(22);
        SetSessionGraphOptimizationLevel = (delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr>)Slot(23);
        SetIntraOpNumThreads = (delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr>)Slot(24);
        SetInterOpNumThreads = (delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr>)Slot(25);
        SessionGetInputCount = (delegate* unmanaged[Cdecl]<IntPtr, nuint*, IntPtr>)Slot(30);
        SessionGetOutputCount = (delegate* unmanaged[Cdecl]<IntPtr, nuint*, IntPtr>)Slot(31);
        SessionGetInputTypeInfo = (delegate* unmanaged[Cdecl]<IntPtr, nuint, IntPtr*, IntPtr>)Slot(33);
        SessionGetOutputTypeInfo = (delegate* unmanaged[Cdecl]<IntPtr, nuint, IntPtr*, IntPtr>)Slot(34);
        SessionGetInputName = (delegate* unmanaged[Cdecl]<IntPtr, nuint, IntPtr, byte**, IntPtr>)Slot(36);
        SessionGetOutputName = (delegate* unmanaged[Cdecl]<IntPtr, nuint, IntPtr, byte**, IntPtr>)Slot(37);
        CreateRunOptions = (delegate* unmanaged[Cdecl]<IntPtr*, IntPtr>)Slot(39);
        RunOptionsSetTerminate = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr>)Slot(46);
        CreateTensorAsOrtValue = (delegate* unmanaged[Cdecl]<IntPtr, long*, nuint, int, IntPtr*, IntPtr>)Slot(48);
        CreateTensorWithDataAsOrtValue = (delegate* unmanaged[Cdecl]<IntPtr, void*, nuint, long*, nuint, int, IntPtr*, IntPtr>)Slot(49);
        IsTensor = (delegate* unmanaged[Cdecl]<IntPtr, int*, IntPtr>)Slot(50);
        GetTensorMutableData = (delegate* unmanaged[Cdecl]<IntPtr, void**, IntPtr>)Slot(51);
        FillStringTensor = (delegate* unmanaged[Cdecl]<IntPtr, byte**, nuint, IntPtr>)Slot(52);
        GetStringTensorDataLength = (delegate* unmanaged[Cdecl]<IntPtr, nuint*, IntPtr>)Slot(53);
        GetStringTensorContent = (delegate* unmanaged[Cdecl]<IntPtr, void*, nuint, nuint*, nuint, IntPtr>)Slot(54);
        CastTypeInfoToTensorInfo = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr*, IntPtr>)Slot(55);
        GetOnnxTypeFromTypeInfo = (delegate* unmanaged[Cdecl]<IntPtr, int*, IntPtr>)Slot(56);
        GetTensorElementType = (delegate* unmanaged[Cdecl]<IntPtr, int*, IntPtr>)Slot(60);
        GetDimensionsCount = (delegate* unmanaged[Cdecl]<IntPtr, nuint*, IntPtr>)Slot(61);
        GetDimensions = (delegate* unmanaged[Cdecl]<IntPtr, long*, nuint, IntPtr>)Slot(62);
        GetSymbolicDimensions = (delegate* unmanaged[Cdecl]<IntPtr, byte**, nuint, IntPtr>)Slot(63);
        GetTensorShapeElementCount = (delegate* unmanaged[Cdecl]<IntPtr, nuint*, IntPtr>)Slot(64);
        GetTensorTypeAndShape = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr*, IntPtr>)Slot(65);
        GetValueType = (delegate* unmanaged[Cdecl]<IntPtr, int*, IntPtr>)Slot(67);
        CreateCpuMemoryInfo = (delegate* unmanaged[Cdecl]<int, int, IntPtr*, IntPtr>)Slot(69);
        AllocatorFree = (delegate* unmanaged[Cdecl]<IntPtr, void*, IntPtr>)Slot(76);
        GetAllocatorWithDefaultOptions = (delegate* unmanaged[Cdecl]<IntPtr*, IntPtr>)Slot(78);
        ReleaseEnv = (delegate* unmanaged[Cdecl]<IntPtr, void>)Slot(92);
        ReleaseStatus = (delegate* unmanaged[Cdecl]<IntPtr, void>)Slot(93);
        ReleaseMemoryInfo = (delegate* unmanaged[Cdecl]<IntPtr, void>)Slot(94);
        ReleaseSession = (delegate* unmanaged[Cdecl]<IntPtr, void>)Slot(95);
        ReleaseValue = (delegate* unmanaged[Cdecl]<IntPtr, void>)Slot(96);
        ReleaseRunOptions = (delegate* unmanaged[Cdecl]<IntPtr, void>)Slot(97);
        ReleaseTypeInfo = (delegate* unmanaged[Cdecl]<IntPtr, void>)Slot(98);
        ReleaseTensorTypeAndShapeInfo = (delegate* unmanaged[Cdecl]<IntPtr, void>)Slot(99);
        ReleaseSessionOptions = (delegate* unmanaged[Cdecl]<IntPtr, void>)Slot(100);
        AddFreeDimensionOverrideByName = (delegate* unmanaged[Cdecl]<IntPtr, byte*, long, IntPtr>)Slot(124);
        GetAvailableProviders = (delegate* unmanaged[Cdecl]<byte***, int*, IntPtr>)Slot(125);
        ReleaseAvailableProviders = (delegate* unmanaged[Cdecl]<byte**, int, IntPtr>)Slot(126);
        AddSessionConfigEntry = (delegate* unmanaged[Cdecl]<IntPtr, byte*, byte*, IntPtr>)Slot(130);
        SessionOptionsAppendExecutionProvider_CUDA_V2 = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr, IntPtr>)Slot(204);
        CreateCUDAProviderOptions = (delegate* unmanaged[Cdecl]<IntPtr*, IntPtr>)Slot(205);
        UpdateCUDAProviderOptions = (delegate* unmanaged[Cdecl]<IntPtr, byte**, byte**, nuint, IntPtr>)Slot(206);
        ReleaseCUDAProviderOptions = (delegate* unmanaged[Cdecl]<IntPtr, void>)Slot(208);
        GetBuildInfoString = (delegate* unmanaged[Cdecl]<byte*>)Slot(254);
    }

    /// <summary>Version string reported by <c>OrtApiBase::GetVersionString</c>, e.g. "1.30.0".</summary>
    public string Version { get; }

    private IntPtr Slot(int index)
    {
        var fn = _table[index];
        if (fn == IntPtr.Zero)
        {
            throw new OnnxRuntimeException(OrtErrorCode.Fail, $"OrtApi entry {index} is null in ONNX Runtime {Version}.");
        }
        return fn;
    }

    // 0..9
    public readonly delegate* unmanaged[Cdecl]<int, byte*, IntPtr> CreateStatus;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, int> GetErrorCode;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, byte*> GetErrorMessage;
    public readonly delegate* unmanaged[Cdecl]<int, byte*, IntPtr*, IntPtr> CreateEnv;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, byte*, IntPtr, IntPtr*, IntPtr> CreateSession;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void*, nuint, IntPtr, IntPtr*, IntPtr> CreateSessionFromArray;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr, IntPtr*, IntPtr*, nuint, IntPtr*, nuint, IntPtr*, IntPtr> Run;

    // Session options
    public readonly delegate* unmanaged[Cdecl]<IntPtr*, IntPtr> CreateSessionOptions;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr> SetSessionExecutionMode;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr> EnableMemPattern;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr> DisableMemPattern;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr> EnableCpuMemArena;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr> DisableCpuMemArena;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, byte*, IntPtr> SetSessionLogId;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr> SetSessionLogSeverityLevel;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr> SetSessionGraphOptimizationLevel;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr> SetIntraOpNumThreads;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, int, IntPtr> SetInterOpNumThreads;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, byte*, long, IntPtr> AddFreeDimensionOverrideByName;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, byte*, byte*, IntPtr> AddSessionConfigEntry;

    // Session metadata
    public readonly delegate* unmanaged[Cdecl]<IntPtr, nuint*, IntPtr> SessionGetInputCount;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, nuint*, IntPtr> SessionGetOutputCount;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, nuint, IntPtr*, IntPtr> SessionGetInputTypeInfo;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, nuint, IntPtr*, IntPtr> SessionGetOutputTypeInfo;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, nuint, IntPtr, byte**, IntPtr> SessionGetInputName;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, nuint, IntPtr, byte**, IntPtr> SessionGetOutputName;

    // Run options
    public readonly delegate* unmanaged[Cdecl]<IntPtr*, IntPtr> CreateRunOptions;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr> RunOptionsSetTerminate;

    // Values
    public readonly delegate* unmanaged[Cdecl]<IntPtr, long*, nuint, int, IntPtr*, IntPtr> CreateTensorAsOrtValue;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void*, nuint, long*, nuint, int, IntPtr*, IntPtr> CreateTensorWithDataAsOrtValue;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, int*, IntPtr> IsTensor;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void**, IntPtr> GetTensorMutableData;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, byte**, nuint, IntPtr> FillStringTensor;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, nuint*, IntPtr> GetStringTensorDataLength;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void*, nuint, nuint*, nuint, IntPtr> GetStringTensorContent;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr*, IntPtr> GetTensorTypeAndShape;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, int*, IntPtr> GetValueType;

    // Type info
    public readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr*, IntPtr> CastTypeInfoToTensorInfo;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, int*, IntPtr> GetOnnxTypeFromTypeInfo;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, int*, IntPtr> GetTensorElementType;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, nuint*, IntPtr> GetDimensionsCount;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, long*, nuint, IntPtr> GetDimensions;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, byte**, nuint, IntPtr> GetSymbolicDimensions;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, nuint*, IntPtr> GetTensorShapeElementCount;

    // Memory
    public readonly delegate* unmanaged[Cdecl]<int, int, IntPtr*, IntPtr> CreateCpuMemoryInfo;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void*, IntPtr> AllocatorFree;
    public readonly delegate* unmanaged[Cdecl]<IntPtr*, IntPtr> GetAllocatorWithDefaultOptions;

    // Release functions (return void)
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseEnv;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseStatus;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseMemoryInfo;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseSession;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseValue;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseRunOptions;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseTypeInfo;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseTensorTypeAndShapeInfo;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseSessionOptions;

    // Providers
    public readonly delegate* unmanaged[Cdecl]<byte***, int*, IntPtr> GetAvailableProviders;
    public readonly delegate* unmanaged[Cdecl]<byte**, int, IntPtr> ReleaseAvailableProviders;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr, IntPtr> SessionOptionsAppendExecutionProvider_CUDA_V2;
    public readonly delegate* unmanaged[Cdecl]<IntPtr*, IntPtr> CreateCUDAProviderOptions;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, byte**, byte**, nuint, IntPtr> UpdateCUDAProviderOptions;
    public readonly delegate* unmanaged[Cdecl]<IntPtr, void> ReleaseCUDAProviderOptions;

    // Misc
    public readonly delegate* unmanaged[Cdecl]<byte*> GetBuildInfoString;

    /// <summary>
    /// Converts a non-null <c>OrtStatus*</c> into an <see cref="OnnxRuntimeException"/>, releasing the status.
    /// A null status means success and returns normally.
    /// </summary>
    public void Check(IntPtr status)
    {
        if (status != IntPtr.Zero)
        {
            throw ToException(status);
        }
    }

    /// <summary>Reads code and message from a status, releases it and returns the exception to throw.</summary>
    public OnnxRuntimeException ToException(IntPtr status)
    {
        var code = (OrtErrorCode)GetErrorCode(status);
        var message = Marshal.PtrToStringUTF8((IntPtr)GetErrorMessage(status)) ?? string.Empty;
        ReleaseStatus(status);
        return new OnnxRuntimeException(code, message);
    }
}
