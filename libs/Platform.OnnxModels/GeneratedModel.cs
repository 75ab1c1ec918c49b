using System.Security.Cryptography;

namespace Platform.OnnxModels;

/// <summary>Serialised ONNX model bytes plus the facts a caller wants to report about them.</summary>
/// <param name="Kind">Generator kind, e.g. "mlp".</param>
/// <param name="Bytes">The ONNX <c>ModelProto</c> bytes.</param>
/// <param name="ParameterCount">Number of trained parameters (initializer elements).</param>
/// <param name="FlopsPerSample">Floating-point operations per batch item (a multiply-add counts as 2).</param>
/// <param name="Description">Human-readable summary of inputs, outputs and layers.</param>
public sealed record GeneratedModel(string Kind, byte[] Bytes, long ParameterCount, long FlopsPerSample, string Description)
{
    /// <summary>Lower-case hex SHA-256 of <see cref="Bytes"/>.</summary>
    public string Sha256 => Convert.ToHexStringLower(SHA256.HashData(Bytes));

    /// <summary>Writes the model to a file, creating its directory.</summary>
    public async Task WriteAsync(string path, CancellationToken cancellationToken = default)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }
        await File.WriteAllBytesAsync(path, Bytes, cancellationToken).ConfigureAwait(false);
    }
}
