using System.Security.Cryptography;
using Platform.Inference.Protocol;
using Platform.ModelRegistry;
using Platform.OnnxRuntime;

namespace Platform.AdminApi;

/// <summary>An upload refused because of what the client sent (HTTP 4xx).</summary>
internal sealed class UploadRejectedException(int statusCode, string message) : Exception(message)
{
    public int StatusCode { get; } = statusCode;
}

/// <summary>A streamed, hashed and ORT-validated upload sitting in a temporary file until it is registered.</summary>
internal sealed record ValidatedModelFile(string Path, string Sha256, long SizeBytes, IReadOnlyList<ModelTensorSpec> Inputs, IReadOnlyList<ModelTensorSpec> Outputs)
    : IDisposable
{
    public void Dispose()
    {
        try
        {
            File.Delete(Path);
        }
        catch (IOException)
        {
            // Temporary directory; the OS cleans it eventually.
        }
    }
}

/// <summary>
/// Receives model files: the body is streamed to a temporary file in 64 KiB chunks while SHA-256 is computed (memory use
/// is constant whatever the size), then ONNX Runtime loads the file. Only a file ORT accepts reaches the object store,
/// so a corrupt upload leaves nothing behind; the temporary file is always deleted.
/// </summary>
internal sealed partial class ModelUpload(OrtEnvironment ort, ILogger<ModelUpload> logger)
{
    /// <summary>Largest accepted model file.</summary>
    public const long MaxModelBytes = 2L * 1024 * 1024 * 1024;

    public async Task<ValidatedModelFile> ReceiveAsync(Stream body, string model, CancellationToken cancellationToken)
    {
        var directory = Path.Combine(Path.GetTempPath(), "platform-model-uploads");
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, $"{Guid.NewGuid():N}.onnx");
        try
        {
            string sha256;
            long size = 0;
            using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
            await using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                var buffer = new byte[1 << 16];
                int read;
                while ((read = await body.ReadAsync(buffer, cancellationToken)) > 0)
                {
                    size += read;
                    if (size > MaxModelBytes)
                    {
                        throw new UploadRejectedException(StatusCodes.Status413PayloadTooLarge, $"body: larger than {MaxModelBytes} bytes");
                    }
                    hash.AppendData(buffer, 0, read);
                    await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                }
                sha256 = Convert.ToHexStringLower(hash.GetHashAndReset());
            }
            if (size == 0)
            {
                throw new UploadRejectedException(StatusCodes.Status400BadRequest, "body: empty; send the ONNX file as application/octet-stream");
            }

            var (inputs, outputs) = await InspectAsync(path, cancellationToken);
            LogReceived(logger, model, sha256, size);
            return new ValidatedModelFile(path, sha256, size, inputs, outputs);
        }
        catch
        {
            File.Delete(path);
            throw;
        }
    }

    private async Task<(IReadOnlyList<ModelTensorSpec>, IReadOnlyList<ModelTensorSpec>)> InspectAsync(string path, CancellationToken cancellationToken)
    {
        InferenceSession session;
        try
        {
            session = await ort.CreateSessionAsync(path, new InferenceSessionOptions
            {
                ExecutionProvider = ExecutionProviderPreference.Cpu,
                IntraOpNumThreads = 1,
                InterOpNumThreads = 1,
            }, cancellationToken);
        }
        catch (OnnxRuntimeException ex)
        {
            throw new UploadRejectedException(StatusCodes.Status400BadRequest, $"body: not a valid ONNX model: {OnnxRuntimeErrors.Describe(ex)}");
        }
        using (session)
        {
            return (Describe(session.Inputs, "input"), Describe(session.Outputs, "output"));
        }
    }

    private static ModelTensorSpec[] Describe(IReadOnlyList<TensorMetadata> tensors, string kind) =>
    [
        .. tensors.Select(t =>
        {
            if (t.ValueType != OnnxValueType.Tensor)
            {
                throw new UploadRejectedException(StatusCodes.Status400BadRequest,
                    $"body: {kind} '{t.Name}' is a {t.ValueType}; only tensor inputs and outputs can be served");
            }
            if (!DataTypes.TryFromOnnxElementType((int)t.ElementType, out var dataType))
            {
                throw new UploadRejectedException(StatusCodes.Status400BadRequest,
                    $"body: {kind} '{t.Name}' has element type {t.ElementType}, which the inference protocol has no datatype for");
            }
            return new ModelTensorSpec(t.Name, dataType.ToProtocolName(), [.. t.Shape]);
        }),
    ];

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Received a valid ONNX file for {Model}: {Sha256}, {Bytes} bytes")]
    private static partial void LogReceived(ILogger logger, string model, string sha256, long bytes);
}
