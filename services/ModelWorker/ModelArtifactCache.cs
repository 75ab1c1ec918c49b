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
    /// <exception cref="ArtifactIntegrityException">The object is missing from the store, or its bytes do not hash to <paramref name="sha256"/>.</exception>
    public async Task<string> GetLocalPathAsync(string sha256, CancellationToken cancellationToken)
    {
        System.IO.Directory.CreateDirectory(Directory);
        var path = Path.Combine(Directory, sha256 + ".onnx");
        if (File.Exists(path))
        {
            // A load is rare and a hash is cheap next to creating a session: a copy damaged on this disk is caught too.
            if (string.Equals(await HashFileAsync(path, cancellationToken), sha256, StringComparison.Ordinal))
            {
                LogCacheHit(logger, sha256);
                return path;
            }

            LogCacheDamaged(logger, sha256);
            File.Delete(path);
        }

        var key = ModelArtifacts.ObjectKey(sha256);
        var temporary = Path.Combine(Directory, $"{sha256}.{Guid.NewGuid():N}.partial");
        try
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            long length = 0;
            Stream source;
            try
            {
                source = await objectStore.GetAsync(key, cancellationToken);
            }
            catch (ObjectNotFoundException ex)
            {
                throw new ArtifactIntegrityException(ArtifactFault.Missing, $"artifact {key} is missing from the object store", ex);
            }

            await using (source)
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
                throw new ArtifactIntegrityException(ArtifactFault.Damaged,
                    $"artifact {key} is damaged: its {length} bytes hash to sha256 {actual}, not the {sha256} recorded at upload");
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

    private static async Task<string> HashFileAsync(string path, CancellationToken cancellationToken)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(file, cancellationToken));
    }

    [LoggerMessage(EventId = 32, Level = LogLevel.Warning, Message = "Cached model file {Sha256} no longer matches its hash; downloading it again")]
    private static partial void LogCacheDamaged(ILogger logger, string sha256);

    [LoggerMessage(EventId = 30, Level = LogLevel.Debug, Message = "Model file {Sha256} found in the local cache")]
    private static partial void LogCacheHit(ILogger logger, string sha256);

    [LoggerMessage(EventId = 31, Level = LogLevel.Information, Message = "Downloaded model file {Sha256} ({Bytes} bytes) into the local cache")]
    private static partial void LogDownloaded(ILogger logger, string sha256, long bytes);
}

/// <summary>What is wrong with a model artifact.</summary>
internal enum ArtifactFault
{
    /// <summary>No object under the artifact's key.</summary>
    Missing,

    /// <summary>The object's bytes do not hash to the SHA-256 recorded at upload.</summary>
    Damaged,
}

/// <summary>A model artifact that must not be loaded: missing from the object store or not the bytes uploaded.</summary>
internal sealed class ArtifactIntegrityException(ArtifactFault fault, string message, Exception? innerException = null)
    : Exception(message, innerException)
{
    /// <summary>What is wrong.</summary>
    public ArtifactFault Fault { get; } = fault;
}
