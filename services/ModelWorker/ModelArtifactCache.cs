using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using Platform.ModelRegistry;
using Platform.ObjectStore;

namespace Platform.ModelWorker;

/// <summary>
/// Local disk cache of model files keyed by SHA-256: a file is downloaded once per machine, verified against its hash,
/// and moved into place atomically so replicas sharing the directory never see a partial file.
/// </summary>
internal sealed partial class ModelArtifactCache(IObjectStore objectStore, IOptions<WorkerOptions> options, ILogger<ModelArtifactCache> logger)
{
    private string Directory => options.Value.CacheDirectory is { Length: > 0 } configured
        ? configured
        : Path.Combine(Path.GetTempPath(), "platform-model-cache");

    /// <summary>Path of the verified local copy, downloading it first when needed.</summary>
    /// <exception cref="InvalidDataException">The downloaded bytes do not hash to <paramref name="sha256"/>.</exception>
    public async Task<string> GetLocalPathAsync(string sha256, CancellationToken cancellationToken)
    {
        System.IO.Directory.CreateDirectory(Directory);
        var path = Path.Combine(Directory, sha256 + ".onnx");
        if (File.Exists(path))
        {
            LogCacheHit(logger, sha256);
            return path;
        }

        var temporary = Path.Combine(Directory, $"{sha256}.{Guid.NewGuid():N}.partial");
        try
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            long length = 0;
            await using (var source = await objectStore.GetAsync(ModelArtifacts.ObjectKey(sha256), cancellationToken))
            await using (var target = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                var buffer = new byte[1 << 16];
                int read;
                while ((read = await source.ReadAsync(buffer, cancellationToken)) > 0)
                {
                    hash.AppendData(buffer, 0, read);
                    await target.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                    length += read;
                }
            }
            var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
            if (!string.Equals(actual, sha256, StringComparison.Ordinal))
            {
                throw new InvalidDataException($"Artefact {ModelArtifacts.ObjectKey(sha256)} hashes to {actual}, not {sha256}.");
            }
            File.Move(temporary, path, overwrite: true);
            LogDownloaded(logger, sha256, length);
            return path;
        }
        finally
        {
            if (File.Exists(temporary))
            {
                File.Delete(temporary);
            }
        }
    }

    [LoggerMessage(EventId = 30, Level = LogLevel.Debug, Message = "Model file {Sha256} found in the local cache")]
    private static partial void LogCacheHit(ILogger logger, string sha256);

    [LoggerMessage(EventId = 31, Level = LogLevel.Information, Message = "Downloaded model file {Sha256} ({Bytes} bytes) into the local cache")]
    private static partial void LogDownloaded(ILogger logger, string sha256, long bytes);
}
