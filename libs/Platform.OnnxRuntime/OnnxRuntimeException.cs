namespace Platform.OnnxRuntime;

/// <summary>Error codes reported by ONNX Runtime (<c>OrtErrorCode</c> in the C API).</summary>
public enum OrtErrorCode
{
    /// <summary>ORT_OK.</summary>
    Ok = 0,
    /// <summary>ORT_FAIL: generic failure.</summary>
    Fail = 1,
    /// <summary>ORT_INVALID_ARGUMENT: e.g. a wrong input name, type or shape.</summary>
    InvalidArgument = 2,
    /// <summary>ORT_NO_SUCHFILE: a model path or library that does not exist.</summary>
    NoSuchFile = 3,
    /// <summary>ORT_NO_MODEL.</summary>
    NoModel = 4,
    /// <summary>ORT_ENGINE_ERROR.</summary>
    EngineError = 5,
    /// <summary>ORT_RUNTIME_EXCEPTION: a kernel failed while running.</summary>
    RuntimeException = 6,
    /// <summary>ORT_INVALID_PROTOBUF: the model bytes are not a valid ONNX protobuf.</summary>
    InvalidProtobuf = 7,
    /// <summary>ORT_MODEL_LOADED.</summary>
    ModelLoaded = 8,
    /// <summary>ORT_NOT_IMPLEMENTED: e.g. an operator or type without a kernel.</summary>
    NotImplemented = 9,
    /// <summary>ORT_INVALID_GRAPH: the graph failed validation.</summary>
    InvalidGraph = 10,
    /// <summary>ORT_EP_FAIL: an execution provider failed.</summary>
    EpFail = 11,
    /// <summary>ORT_MODEL_LOAD_CANCELED.</summary>
    ModelLoadCanceled = 12,
    /// <summary>ORT_MODEL_REQUIRES_COMPILATION.</summary>
    ModelRequiresCompilation = 13,
    /// <summary>ORT_NOT_FOUND.</summary>
    NotFound = 14,
}

/// <summary>An error reported by ONNX Runtime, or by this binding when ONNX Runtime cannot be used.</summary>
public sealed class OnnxRuntimeException : Exception
{
    /// <summary>Creates an exception carrying ONNX Runtime's code and message.</summary>
    public OnnxRuntimeException(OrtErrorCode errorCode, string message)
        : base($"[ONNXRuntime {errorCode}] {message}")
    {
        ErrorCode = errorCode;
        OrtMessage = message;
    }

    /// <summary>The ONNX Runtime error code.</summary>
    public OrtErrorCode ErrorCode { get; }

    /// <summary>The message exactly as ONNX Runtime reported it (without the code prefix).</summary>
    public string OrtMessage { get; }
}
