using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;
using Platform.Inference.OpenInference;
using Platform.Inference.Protocol;
using Platform.ModelRegistry;

namespace Platform.InferenceApi.Serving;

/// <summary>Options of <see cref="FeatureEnricher"/> (configuration section <c>FeatureEnrichment</c>).</summary>
public sealed class FeatureEnrichmentOptions
{
    /// <summary>Configuration section.</summary>
    public const string SectionName = "FeatureEnrichment";

    /// <summary>ContextEnrichment's base address; the logical name is resolved by service discovery.</summary>
    public Uri ServiceUri { get; set; } = new("http://context-enrichment");

    /// <summary>
    /// Budget for one feature lookup, retries included. An inference waits for its features, so this is short: past it
    /// the request fails fast with 503 and <c>Retry-After</c> rather than hang on a slow feature store.
    /// </summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Timeout of one attempt (a refused or timed-out attempt is retried once on another replica).</summary>
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Retry-After sent with a 503 when ContextEnrichment cannot be reached.</summary>
    public TimeSpan RetryAfter { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>
/// The feature store could not answer (unreachable, timed out, 5xx): the request is answered with <see cref="StatusCode"/>
/// (503 or 502) and a <c>Retry-After</c>, never 500, since the client can retry and nothing is wrong with its request.
/// </summary>
public sealed class FeatureEnrichmentUnavailableException(int statusCode, string message, TimeSpan retryAfter, Exception? inner = null)
    : Exception(message, inner)
{
    /// <summary>HTTP status to answer with.</summary>
    public int StatusCode { get; } = statusCode;

    /// <summary>How long the client should wait before retrying.</summary>
    public TimeSpan RetryAfter { get; } = retryAfter;
}

/// <summary>
/// Fills the inputs a model version binds to feature sets (<see cref="ModelVersionRecord.FeatureBindings"/>) for a
/// request that names an entity (<c>parameters.entity_id</c>) and leaves those inputs out: one ContextEnrichment call
/// (<c>GET /api/entities/{entity}/features?sets=…</c>) fetches every needed set, each vector becomes the input's tensor
/// (converted to its datatype, repeated per batch row). What the request supplies itself wins. A missing vector takes
/// the binding's default or, without one, fails with a 400 naming every missing input and set.
/// </summary>
public sealed partial class FeatureEnricher : IDisposable
{
    /// <summary>Name of the HttpClient (and of its resilience settings).</summary>
    public const string HttpClientName = "context-enrichment";

    /// <summary>ActivitySource of the enrichment span (exported by the <c>Platform.*</c> convention).</summary>
    public const string ActivitySourceName = "Platform.InferenceApi";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private readonly IHttpClientFactory _http;
    private readonly IActiveModelsView _view;
    private readonly IOptions<FeatureEnrichmentOptions> _options;
    private readonly IOptions<InferenceApiOptions> _apiOptions;
    private readonly ILogger<FeatureEnricher> _logger;
    private readonly ActivitySource _activities = new(ActivitySourceName);
    private readonly Counter<long> _outcomes;

    /// <summary>Creates the enricher; its counter joins InferenceApi's meter (<see cref="InferenceMetrics.MeterName"/>).</summary>
    public FeatureEnricher(IHttpClientFactory http, IActiveModelsView view, IOptions<FeatureEnrichmentOptions> options,
        IOptions<InferenceApiOptions> apiOptions, IMeterFactory meterFactory, ILogger<FeatureEnricher> logger)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        _http = http;
        _view = view;
        _options = options;
        _apiOptions = apiOptions;
        _logger = logger;
        // The factory hands out one Meter per name, so this counter sits beside InferenceMetrics' instruments.
        _outcomes = meterFactory.Create(InferenceMetrics.MeterName).CreateCounter<long>(
            "platform.inference_api.enrichment.inputs",
            description: "Bound inputs of requests with parameters.entity_id, by outcome: filled (from the feature store), default, missing (400), " +
                         "invalid (vector does not fit, 400), supplied (the request's own input won), unavailable (feature store down, 503)");
    }

    /// <summary>
    /// Returns <paramref name="request"/> itself when there is nothing to fill (no entity, no bindings, or the request
    /// supplies every bound input), otherwise a copy with the bound inputs added.
    /// </summary>
    /// <exception cref="InferenceRequestException">Missing features without a default, a vector that does not fit its input, or a bad entity id (400).</exception>
    /// <exception cref="FeatureEnrichmentUnavailableException">ContextEnrichment could not answer (503/502).</exception>
    public async ValueTask<InferRequest> EnrichAsync(InferRequest request, ServedModel served, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(served);
        if (request.Parameters.EntityId is not { } entity
            || _view.Current.Find(served.Name, served.Version)?.Version is not { FeatureBindings.Count: > 0 } version)
        {
            return request;
        }

        if (FeatureBindingRules.ValidateKey(entity) is { } invalid)
        {
            throw new InferenceRequestException($"parameters.entity_id: {invalid}");
        }

        var needed = new List<(FeatureBinding Binding, ModelTensorSpec Spec)>();
        foreach (var binding in version.FeatureBindings)
        {
            if (request.Inputs.Any(i => i.Name == binding.Input))
            {
                Count(served.Name, binding.FeatureSet, "supplied");
            }
            else if (version.Inputs.FirstOrDefault(s => s.Name == binding.Input) is { } spec)
            {
                needed.Add((binding, spec));
            }
        }

        if (needed.Count == 0)
        {
            return request;
        }

        var sets = needed.Select(n => n.Binding.FeatureSet).Distinct(StringComparer.Ordinal).ToArray();
        using var activity = _activities.StartActivity($"enrich {served.Name}", ActivityKind.Internal);
        activity?.SetTag("platform.model", served.Name);
        activity?.SetTag("platform.model_version", served.Version);
        activity?.SetTag("platform.feature_sets", string.Join(",", sets));
        var vectors = await FetchAsync(entity, sets, served.Name, activity, cancellationToken);

        var rows = BatchRows(request, version);
        var added = new List<InferTensor>(needed.Count);
        var problems = new List<string>();
        long bytes = 0;
        foreach (var (binding, spec) in needed)
        {
            double[] values;
            string outcome;
            if (vectors.TryGetValue(binding.FeatureSet, out var vector))
            {
                values = Array.ConvertAll(vector, v => (double)v);
                outcome = "filled";
            }
            else if (binding.Default is { } fallback)
            {
                values = [.. fallback];
                outcome = "default";
            }
            else
            {
                Count(served.Name, binding.FeatureSet, "missing");
                problems.Add($"input '{binding.Input}': entity '{entity}' has no features in set '{binding.FeatureSet}' and the binding has no default");
                continue;
            }

            if (!FeatureBindingRules.TryBuild(spec, values, rows, out var shape, out var data, out var error))
            {
                Count(served.Name, binding.FeatureSet, "invalid");
                var source = outcome == "filled" ? $"the vector of entity '{entity}' in set '{binding.FeatureSet}'" : $"the default for set '{binding.FeatureSet}'";
                problems.Add($"input '{binding.Input}': {source} {error}");
                continue;
            }

            bytes += data.Length;
            Count(served.Name, binding.FeatureSet, outcome);
            added.Add(new InferTensor(binding.Input, DataTypes.TryParse(spec.Datatype, out var type) ? type : DataType.Fp32, shape, data));
        }

        if (problems.Count > 0)
        {
            activity?.SetStatus(ActivityStatusCode.Error, "features missing or invalid");
            throw new InferenceRequestException(string.Join("; ", problems));
        }

        if (bytes > _apiOptions.Value.MaxRequestBytes)
        {
            throw new InferenceRequestException(
                $"parameters.entity_id: filling {string.Join(", ", needed.Select(n => $"'{n.Binding.Input}'"))} for {rows} rows takes {bytes} bytes, " +
                $"more than the {_apiOptions.Value.MaxRequestBytes}-byte request limit");
        }

        return request with { Inputs = [.. request.Inputs, .. added] };
    }

    /// <inheritdoc />
    public void Dispose() => _activities.Dispose();

    /// <summary>
    /// Rows to fill: the batch size of the request's own inputs (one entity, several rows: its features repeat per
    /// row), 1 when the request supplies no batched input.
    /// </summary>
    private static int BatchRows(InferRequest request, ModelVersionRecord version)
    {
        foreach (var input in request.Inputs)
        {
            var spec = version.Inputs.FirstOrDefault(s => s.Name == input.Name);
            if (spec is not null && FeatureBindingRules.HasBatchDimension(spec) && input.Shape.Length > 0 && input.Shape[0] is > 0 and <= int.MaxValue)
            {
                return (int)input.Shape[0];
            }
        }

        return 1;
    }

    private async Task<Dictionary<string, float[]>> FetchAsync(string entity, string[] sets, string model, Activity? activity, CancellationToken cancellationToken)
    {
        var options = _options.Value;
        var path = new StringBuilder("api/entities/").Append(Uri.EscapeDataString(entity)).Append("/features?sets=")
            .Append(string.Join(",", sets.Select(Uri.EscapeDataString))).ToString();
        var uri = new Uri(options.ServiceUri, path);
        try
        {
            using var client = _http.CreateClient(HttpClientName);
            using var response = await client.GetAsync(uri, HttpCompletionOption.ResponseContentRead, cancellationToken);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                var answer = await response.Content.ReadFromJsonAsync<LookupAnswer>(Json, cancellationToken)
                    ?? throw new JsonException("empty answer");
                return answer.Features.ToDictionary(f => f.FeatureSet, f => f.Values, StringComparer.Ordinal);
            }

            var body = await response.Content.ReadAsStringAsync(cancellationToken);
            var server = (int)response.StatusCode >= 500 || response.StatusCode == HttpStatusCode.TooManyRequests;
            throw Unavailable(server ? 503 : 502, $"the feature store answered {(int)response.StatusCode}: {Truncate(body)}", model, sets, activity, null);
        }
        catch (Exception ex) when (ex is not FeatureEnrichmentUnavailableException && !cancellationToken.IsCancellationRequested)
        {
            // Refused, reset, timed out, circuit open, garbled answer: all say the feature store cannot serve now.
            throw Unavailable(503, "the feature store (context-enrichment) is unavailable", model, sets, activity, ex);
        }
    }

    private FeatureEnrichmentUnavailableException Unavailable(int status, string reason, string model, string[] sets, Activity? activity, Exception? ex)
    {
        foreach (var set in sets)
        {
            Count(model, set, "unavailable");
        }

        activity?.SetStatus(ActivityStatusCode.Error, reason);
        LogUnavailable(_logger, model, string.Join(",", sets), status, ex?.Message ?? reason);
        return new FeatureEnrichmentUnavailableException(status, $"parameters.entity_id: cannot fetch features for model '{model}': {reason}; retry later",
            _options.Value.RetryAfter, ex);
    }

    private void Count(string model, string featureSet, string outcome) =>
        _outcomes.Add(1, new TagList { { "model", model }, { "feature_set", featureSet }, { "outcome", outcome } });

    private static string Truncate(string text) => text.Length <= 200 ? text : text[..200] + "…";

    [LoggerMessage(EventId = 40, Level = LogLevel.Warning, Message = "Feature lookup for {Model} (sets {FeatureSets}) failed, answering {Status}: {Reason}")]
    private static partial void LogUnavailable(ILogger logger, string model, string featureSets, int status, string reason);

    private sealed record LookupAnswer(IReadOnlyList<LookupVector> Features);

    private sealed record LookupVector(string FeatureSet, float[] Values);
}

/// <summary>Registration of <see cref="FeatureEnricher"/>.</summary>
public static class FeatureEnrichmentServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="FeatureEnricher"/> (options section <c>FeatureEnrichment</c>) and its HttpClient, whose
    /// resilience budget (<see cref="FeatureEnrichmentOptions.Timeout"/>, one retry) is much tighter than the service
    /// defaults' 30 s: an inference must not hang on its feature store.
    /// </summary>
    public static IHostApplicationBuilder AddFeatureEnrichment(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddOptions<FeatureEnrichmentOptions>().BindConfiguration(FeatureEnrichmentOptions.SectionName);
        // The service defaults' standard handler allows 30 s with three retries, and handlers added for every client share
        // one options instance: this client gets a standard handler of its own instead. (RemoveAllResilienceHandlers is
        // marked for evaluation; it is the documented way to do this.)
#pragma warning disable EXTEXP0001
        builder.Services.AddHttpClient(FeatureEnricher.HttpClientName)
            .RemoveAllResilienceHandlers()
#pragma warning restore EXTEXP0001
            .AddStandardResilienceHandler()
            .Configure((resilience, services) =>
            {
                var enrichment = services.GetRequiredService<IOptions<FeatureEnrichmentOptions>>().Value;
                resilience.TotalRequestTimeout.Timeout = enrichment.Timeout;
                resilience.AttemptTimeout.Timeout = enrichment.AttemptTimeout;
                resilience.Retry.MaxRetryAttempts = 1;
                resilience.Retry.Delay = TimeSpan.FromMilliseconds(50);
                resilience.Retry.ShouldRetryAfterHeader = false;
                // The breaker's sampling window must be at least twice the attempt timeout.
                resilience.CircuitBreaker.SamplingDuration = TimeSpan.FromSeconds(Math.Max(30, enrichment.AttemptTimeout.TotalSeconds * 2));
            });
        builder.Services.AddSingleton<FeatureEnricher>();
        return builder;
    }
}
