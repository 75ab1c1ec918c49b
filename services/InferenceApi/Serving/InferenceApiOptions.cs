namespace Platform.InferenceApi.Serving;

/// <summary>Options of the public inference API (configuration section <c>InferenceApi</c>).</summary>
public sealed class InferenceApiOptions
{
    /// <summary>Configuration section.</summary>
    public const string SectionName = "InferenceApi";

    /// <summary>Largest accepted request body (JSON plus binary tensor data).</summary>
    public long MaxRequestBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>Deadline of a request that sets no <c>parameters.timeout</c>.</summary>
    public TimeSpan DefaultTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Upper bound on a request's own <c>parameters.timeout</c>.</summary>
    public TimeSpan MaxTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How long a Redis cache lookup may take before it counts as a miss (the cache must never slow serving down much).</summary>
    public TimeSpan CacheLookupTimeout { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// How stale the in-memory view of active models may be before an unknown model name triggers a registry re-read
    /// (covers a request arriving between an activation and its notification).
    /// </summary>
    public TimeSpan UnknownModelRefreshInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Most shadow copies (rollouts in shadow mode) running at once in this replica; a copy beyond it is dropped, so shadow
    /// traffic can never pile up behind real traffic.
    /// </summary>
    public int MaxShadowConcurrency { get; set; } = 4;

    /// <summary>
    /// Serve an inference while its admission (rate limit + budget, a Redis round trip) is still on its way, when this
    /// replica's last admission of the same key, at most <see cref="AdmissionHintTtl"/> ago, left at least a quarter of the
    /// burst (and 2 tokens) and the budget below 90 %. The answer still waits for the admission: a refused request gets
    /// its 429 and the work done for it is discarded, so limits stay exact; a key near its limit is admitted first, so
    /// refused floods do not reach the workers.
    /// </summary>
    public bool OverlapAdmission { get; set; } = true;

    /// <summary>How long a key's last admission counts as what its bucket holds (see <see cref="OverlapAdmission"/>).</summary>
    public TimeSpan AdmissionHintTtl { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Currency recorded on usage of a model that has no price (its cost is 0).</summary>
    public string DefaultCurrency { get; set; } = "USD";
}
