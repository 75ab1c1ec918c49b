namespace Platform.ObjectStore;

/// <summary>
/// The narrow object-storage surface the platform needs (model artefacts). Keys are bucket-relative, '/'-separated.
/// </summary>
public interface IObjectStore
{
    /// <summary>Bucket this store reads and writes.</summary>
    string Bucket { get; }

    /// <summary>
    /// Uploads <paramref name="content"/> (read once, to its end, never fully buffered; large objects go multipart)
    /// and returns its SHA-256 computed while streaming.
    /// </summary>
    /// <param name="key">Object key.</param>
    /// <param name="content">Source stream; not disposed.</param>
    /// <param name="length">Length when known (informational: the stream is read to its end regardless).</param>
    /// <param name="cancellationToken">Cancels the upload; a started multipart upload is aborted.</param>
    Task<ObjectPutResult> PutAsync(string key, Stream content, long? length = null, CancellationToken cancellationToken = default);

    /// <summary>Opens the object for reading; dispose the stream to release the connection.</summary>
    /// <exception cref="ObjectNotFoundException">No object has that key.</exception>
    Task<Stream> GetAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Metadata of the object, or null when it does not exist.</summary>
    Task<ObjectInfo?> HeadAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Whether an object has that key.</summary>
    Task<bool> ExistsAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Deletes the object; deleting a missing key is not an error.</summary>
    Task DeleteAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Objects whose key starts with <paramref name="prefix"/>, in key order, paging transparently.</summary>
    IAsyncEnumerable<ObjectInfo> ListAsync(string prefix, CancellationToken cancellationToken = default);

    /// <summary>Creates the bucket if it does not exist yet.</summary>
    Task EnsureBucketAsync(CancellationToken cancellationToken = default);
}

/// <summary>Result of <see cref="IObjectStore.PutAsync"/>.</summary>
/// <param name="Key">Object key.</param>
/// <param name="Length">Bytes stored.</param>
/// <param name="Sha256">Lower-case hex SHA-256 of the bytes stored.</param>
/// <param name="ETag">Server ETag without quotes (multipart ETags end in "-partcount").</param>
/// <param name="PartCount">Parts uploaded; 1 for a single PUT.</param>
public sealed record ObjectPutResult(string Key, long Length, string Sha256, string? ETag, int PartCount);

/// <summary>Metadata of a stored object.</summary>
/// <param name="Key">Object key.</param>
/// <param name="Length">Size in bytes.</param>
/// <param name="ETag">Server ETag without quotes.</param>
/// <param name="LastModified">Last modification time reported by the server.</param>
public sealed record ObjectInfo(string Key, long Length, string? ETag, DateTimeOffset? LastModified);

/// <summary>The requested object does not exist.</summary>
public sealed class ObjectNotFoundException(string bucket, string key, Exception? innerException = null)
    : Exception($"Object '{key}' not found in bucket '{bucket}'.", innerException)
{
    /// <summary>Bucket that was searched.</summary>
    public string Bucket { get; } = bucket;

    /// <summary>Key that was not found.</summary>
    public string Key { get; } = key;
}
