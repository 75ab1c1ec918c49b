using System.Text.RegularExpressions;
using Microsoft.ML.OnnxRuntime;

namespace Platform.OnnxRuntime;

/// <summary>Turns ONNX Runtime's exceptions into messages fit for an API error or a health report.</summary>
public static partial class OnnxRuntimeErrors
{
    /// <summary>
    /// ONNX Runtime's message without its <c>[ErrorCode:…]</c> prefix and source location, e.g. "Failed to load library
    /// …/libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared object file: …".
    /// </summary>
    public static string Describe(OnnxRuntimeException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var message = exception.Message.Trim();
        var detail = OrtErrorDetail().Match(message);
        return detail.Success ? detail.Groups["detail"].Value.Trim() : ErrorCodePrefix().Replace(message, string.Empty);
    }

    [GeneratedRegex(@"\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*(?<detail>.+)$", RegexOptions.Singleline)]
    private static partial Regex OrtErrorDetail();

    [GeneratedRegex(@"^\[ErrorCode:\w+\]\s*")]
    private static partial Regex ErrorCodePrefix();
}
