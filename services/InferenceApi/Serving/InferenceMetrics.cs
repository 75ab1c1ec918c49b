using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Platform.InferenceApi.Serving;

/// <summary>Instruments of meter <c>Platform.InferenceApi</c>.</summary>
public sealed class InferenceMetrics
{
    /// <summary>Meter name.</summary>
    public const string MeterName = "Platform.InferenceApi";

    private readonly Counter<long> _cacheHits;
    private readonly Counter<long> _cacheMisses;
    private readonly Counter<long> _requests;
    private readonly Histogram<double> _duration;

    /// <summary>Creates the instruments.</summary>
    public InferenceMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        var meter = meterFactory.Create(MeterName);
        _cacheHits = meter.CreateCounter<long>("platform.inference_api.cache.hits", description: "Inference responses served from the Redis cache");
        _cacheMisses = meter.CreateCounter<long>("platform.inference_api.cache.misses", description: "Cacheable inference requests not found in the cache");
        _requests = meter.CreateCounter<long>("platform.inference_api.requests", description: "Inference requests by model and HTTP status");
        _duration = meter.CreateHistogram<double>("platform.inference_api.request.duration", unit: "s", description: "Inference request duration");
    }

    /// <summary>A cache hit for <paramref name="model"/>.</summary>
    public void CacheHit(string model) => _cacheHits.Add(1, new KeyValuePair<string, object?>("model", model));

    /// <summary>A cache miss for <paramref name="model"/>.</summary>
    public void CacheMiss(string model) => _cacheMisses.Add(1, new KeyValuePair<string, object?>("model", model));

    /// <summary>A finished request; <paramref name="version"/> is the version that answered (tag <c>model_version</c>), null when none did.</summary>
    public void Request(string model, long? version, int status, TimeSpan duration)
    {
        var tags = new TagList { { "model", model }, { "http.response.status_code", status } };
        if (version is { } answered)
        {
            tags.Add("model_version", answered);
        }

        _requests.Add(1, tags);
        _duration.Record(duration.TotalSeconds, tags);
    }
}
