namespace Platform.ServiceDefaults.Resilience;

/// <summary>
/// Settings of the default HTTP resilience pipeline, bound from configuration section <c>HttpResilience</c> for every
/// client; a named client can be tuned with <c>services.Configure&lt;HttpResilienceOptions&gt;(name, ...)</c> or opted out
/// with <see cref="ResilienceHttpClientBuilderExtensions.DisableDefaultResilience"/>.
/// </summary>
public sealed class HttpResilienceOptions
{
    /// <summary>Configuration section bound onto every client's options.</summary>
    public const string SectionName = "HttpResilience";

    /// <summary>When false the handler passes requests straight through (for callers that do their own retries).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Upper bound on the whole call including every retry and backoff.</summary>
    public TimeSpan TotalRequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Timeout of one attempt.</summary>
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Retries after the first attempt; only idempotent methods are retried.</summary>
    public int MaxRetryAttempts { get; set; } = 3;

    /// <summary>Base of the exponential backoff (jittered).</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Longest Retry-After a server may ask for before we stop honouring it and use our own backoff.</summary>
    public TimeSpan MaxRetryAfter { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Failure ratio within <see cref="CircuitBreakerSamplingDuration"/> that opens the circuit.</summary>
    public double CircuitBreakerFailureRatio { get; set; } = 0.5;

    /// <summary>Calls needed in the sampling window before the circuit may open.</summary>
    public int CircuitBreakerMinimumThroughput { get; set; } = 20;

    /// <summary>Sliding window over which the failure ratio is measured (at least 0.5 s).</summary>
    public TimeSpan CircuitBreakerSamplingDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long the circuit stays open before a trial call (at least 0.5 s).</summary>
    public TimeSpan CircuitBreakerBreakDuration { get; set; } = TimeSpan.FromSeconds(5);
}
