namespace Platform.ModelRegistry;

/// <summary>
/// Read side of the model registry (PostgreSQL). Every call queries the database; services on a hot path read
/// <see cref="IActiveModelsView"/> instead, which keeps the active set in memory.
/// </summary>
public interface IModelRegistryReader
{
    /// <summary>All models with their settings and versions, by name.</summary>
    Task<IReadOnlyList<ModelRecord>> ListModelsAsync(CancellationToken cancellationToken = default);

    /// <summary>One model with its versions, or null when it is unknown.</summary>
    Task<ModelRecord?> GetModelAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>One version, active or not, or null when it is unknown.</summary>
    Task<ModelVersionRecord?> GetVersionAsync(string name, long version, CancellationToken cancellationToken = default);

    /// <summary>
    /// The active version to serve: the given one if it is active, or with <paramref name="version"/> null the highest
    /// active version (what KServe/Triton do for an unversioned request). Null when there is none.
    /// </summary>
    Task<ActiveModelVersion?> GetActiveAsync(string name, long? version = null, CancellationToken cancellationToken = default);

    /// <summary>Every active version of every model, with settings.</summary>
    Task<IReadOnlyList<ActiveModelVersion>> ListActiveAsync(CancellationToken cancellationToken = default);
}
