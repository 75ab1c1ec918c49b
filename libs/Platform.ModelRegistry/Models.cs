using System.Text.RegularExpressions;

namespace Platform.ModelRegistry;

/// <summary>An input or output of a registered model version.</summary>
/// <param name="Name">Tensor name as the ONNX graph declares it.</param>
/// <param name="Datatype">KServe v2 datatype name ("FP32", "INT64", "BYTES"...).</param>
/// <param name="Shape">Dimensions with -1 for a dynamic one (dimension 0 is the batch dimension when it is -1).</param>
public sealed record ModelTensorSpec(string Name, string Datatype, IReadOnlyList<long> Shape);

/// <summary>Registry states of a model version.</summary>
public static class ModelVersionStates
{
    /// <summary>Registered but not served.</summary>
    public const string Inactive = "inactive";

    /// <summary>Served by every worker.</summary>
    public const string Active = "active";
}

/// <summary>Per-model serving settings (apply to every version of the model).</summary>
public sealed record ModelSettings
{
    /// <summary>Upper bound on batch rows; 1 turns dynamic batching off.</summary>
    public int MaxBatchSize { get; init; } = 32;

    /// <summary>How long the first request of a batch may wait for others, in microseconds.</summary>
    public long MaxQueueDelayMicros { get; init; } = 1000;

    /// <summary>Requests a worker queues per model version before rejecting with 429.</summary>
    public int QueueCapacity { get; init; } = 1024;

    /// <summary>Whether InferenceApi may cache responses of this model.</summary>
    public bool CacheEnabled { get; init; }

    /// <summary>Lifetime of a cached response, in seconds.</summary>
    public int CacheTtlSeconds { get; init; } = 300;

    /// <summary>Defaults for a model registered for the first time.</summary>
    public static ModelSettings Default { get; } = new();

    /// <summary>The first out-of-range field as "field: reason", or null when all are valid.</summary>
    public string? Validate() =>
        MaxBatchSize is < 1 or > 4096 ? "maxBatchSize: must be between 1 and 4096"
        : MaxQueueDelayMicros is < 0 or > 10_000_000 ? "maxQueueDelayMicros: must be between 0 and 10000000 (10 s)"
        : QueueCapacity is < 1 or > 1_000_000 ? "queueCapacity: must be between 1 and 1000000"
        : CacheTtlSeconds is < 1 or > 2_592_000 ? "cacheTtlSeconds: must be between 1 and 2592000 (30 days)"
        : null;
}

/// <summary>A registered model version.</summary>
/// <param name="Name">Model name.</param>
/// <param name="Version">Version number, 1, 2, 3... per model; never reused.</param>
/// <param name="Sha256">Lower-case hex SHA-256 of the ONNX file; the artefact's object key is derived from it.</param>
/// <param name="SizeBytes">Size of the ONNX file.</param>
/// <param name="Inputs">Model inputs in graph order.</param>
/// <param name="Outputs">Model outputs in graph order.</param>
/// <param name="State"><see cref="ModelVersionStates.Active"/> or <see cref="ModelVersionStates.Inactive"/>.</param>
/// <param name="CreatedAt">When it was uploaded.</param>
/// <param name="UpdatedAt">When its state last changed.</param>
public sealed record ModelVersionRecord(
    string Name,
    long Version,
    string Sha256,
    long SizeBytes,
    IReadOnlyList<ModelTensorSpec> Inputs,
    IReadOnlyList<ModelTensorSpec> Outputs,
    string State,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt)
{
    /// <summary>Whether workers serve this version.</summary>
    public bool IsActive => State == ModelVersionStates.Active;

    /// <summary>
    /// Inputs InferenceApi fills from the feature store for requests naming an entity (<c>parameters.entity_id</c>);
    /// empty when none are declared. Set with <see cref="ModelRegistryStore.SetFeatureBindingsAsync"/>.
    /// </summary>
    public IReadOnlyList<FeatureBinding> FeatureBindings { get; init; } = [];
}

/// <summary>A model with its settings and every version.</summary>
/// <param name="Name">Model name.</param>
/// <param name="Settings">Serving settings.</param>
/// <param name="Versions">Versions in ascending order.</param>
/// <param name="CreatedAt">When the first version was uploaded.</param>
/// <param name="UpdatedAt">When settings last changed.</param>
public sealed record ModelRecord(string Name, ModelSettings Settings, IReadOnlyList<ModelVersionRecord> Versions,
    DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt)
{
    /// <summary>Numbers of the active versions, ascending.</summary>
    public IReadOnlyList<long> ActiveVersions => [.. Versions.Where(v => v.IsActive).Select(v => v.Version)];
}

/// <summary>An active (served) model version with the settings of its model: what a worker loads and a router routes to.</summary>
/// <param name="Version">The version.</param>
/// <param name="Settings">Its model's settings.</param>
public sealed record ActiveModelVersion(ModelVersionRecord Version, ModelSettings Settings)
{
    /// <summary>Model name.</summary>
    public string Name => Version.Name;
}

/// <summary>Model name rules.</summary>
public static partial class ModelNames
{
    /// <summary>Longest accepted name.</summary>
    public const int MaxLength = 64;

    /// <summary>Null when <paramref name="name"/> is a valid model name, otherwise why not (without the field name).</summary>
    public static string? Validate(string? name) =>
        string.IsNullOrEmpty(name) ? "must not be empty"
        : name.Length > MaxLength ? $"must be at most {MaxLength} characters"
        : !Pattern().IsMatch(name) ? "must start with a letter or digit and contain only letters, digits, '-', '_' and '.'"
        : null;

    // Names appear in URLs, metric tags and cache keys, so they stay URL- and label-safe.
    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.-]*$", RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();
}

/// <summary>Where model artefacts live in the object store.</summary>
public static class ModelArtifacts
{
    /// <summary>Object key of an ONNX file by its SHA-256: identical bytes are stored once, whichever model uses them.</summary>
    public static string ObjectKey(string sha256) => $"models/sha256/{sha256}";
}
