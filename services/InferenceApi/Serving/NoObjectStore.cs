using Platform.ObjectStore;

namespace Platform.InferenceApi.Serving;

/// <summary>
/// Stands in for the object store the registry library's constructor asks for: InferenceApi only reads registry rows
/// and must not hold object-store credentials. Any use is a wiring bug and says so.
/// </summary>
internal sealed class NoObjectStore : IObjectStore
{
    public string Bucket => throw Unavailable();

    public Task<ObjectPutResult> PutAsync(string key, Stream content, long? length = null, CancellationToken cancellationToken = default) => throw Unavailable();

    public Task<Stream> GetAsync(string key, CancellationToken cancellationToken = default) => throw Unavailable();

    public Task<ObjectInfo?> HeadAsync(string key, CancellationToken cancellationToken = default) => throw Unavailable();

    public Task<bool> ExistsAsync(string key, CancellationToken cancellationToken = default) => throw Unavailable();

    public Task DeleteAsync(string key, CancellationToken cancellationToken = default) => throw Unavailable();

    public IAsyncEnumerable<ObjectInfo> ListAsync(string prefix, CancellationToken cancellationToken = default) => throw Unavailable();

    public Task EnsureBucketAsync(CancellationToken cancellationToken = default) => throw Unavailable();

    private static InvalidOperationException Unavailable() =>
        new("InferenceApi has no object store: it reads the model registry's rows only.");
}
