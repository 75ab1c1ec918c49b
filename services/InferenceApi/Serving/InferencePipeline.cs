using System.Globalization;
using System.Runtime.CompilerServices;
using Google.Protobuf;
using Microsoft.Extensions.Options;
using Platform.Inference.OpenInference;
using Platform.Inference.Protocol;
using Platform.Inference.Protocol.Wire;
using Platform.Inference.Routing;
using Platform.InferenceApi.Tenancy;
using Platform.Rollouts;

namespace Platform.InferenceApi.Serving;

/// <summary>A request the pipeline could not answer with outputs, in HTTP terms (the gRPC service maps them to status codes).</summary>
/// <param name="Status">400, 404, 413, 429, 499, 500, 502, 503 or 504.</param>
/// <param name="Message">For the client, naming what is wrong.</param>
/// <param name="RetryAfterMs">For 429 and 503: when to come back.</param>
public sealed record InferenceFailure(int Status, string Message, int RetryAfterMs = 0);

/// <summary>A served inference: the outputs asked for, in order, and how the request was served.</summary>
/// <param name="Model">The version that answered.</param>
/// <param name="Request">The request as run (after enrichment).</param>
/// <param name="Outputs">Outputs in the requested order (model order when all).</param>
/// <param name="Worker">The worker's result; null when the cache answered.</param>
/// <param name="CacheHit">True/false when the cache was used, null when not.</param>
public sealed record InferenceAnswer(ServedModel Model, InferRequest Request, IReadOnlyList<InferTensor> Outputs, InferItemResult? Worker, bool? CacheHit);

/// <summary>Timestamps of one request's phases (<see cref="TimeProvider.GetTimestamp"/>; 0 = phase skipped), for Server-Timing.</summary>
public sealed class RequestTiming(long started)
{
    /// <summary>When the handler started (the start of <c>read</c>).</summary>
    public long Started { get; } = started;

    /// <summary>
    /// When the request reached InferenceApi, before enforcement authenticated and admitted it (0: <see cref="Started"/>):
    /// the start of <c>total</c>, so that <c>total</c> is the server's whole time on both transports.
    /// </summary>
    public long Arrived { get; init; }

    /// <summary>Body read.</summary>
    public long Read { get; set; }

    /// <summary>Decoded and validated.</summary>
    public long Decoded { get; set; }

    /// <summary>Cache looked up.</summary>
    public long Cached { get; set; }

    /// <summary>Worker answered.</summary>
    public long Worked { get; set; }

    /// <summary>
    /// Answer encoded (0: until the header is formatted). Set before the usage record is awaited, so <c>encode</c> does
    /// not also count the record's round trip, which enforcement reports as <c>record</c>.
    /// </summary>
    public long Encoded { get; set; }

    /// <summary>Feature lookup, when bound inputs were filled.</summary>
    public (long From, long To) Enrich { get; set; }

    /// <summary>
    /// W3C Server-Timing: <c>read</c>, <c>decode</c>, <c>enrich</c>, <c>cache</c>, <c>worker</c> (round trip, retries
    /// included), <c>queue</c> and <c>compute</c> (reported by the worker), <c>batch</c> (rows run together; desc),
    /// <c>encode</c>, <c>total</c> (from <see cref="Arrived"/>: enforcement's phases are inside it); milliseconds; then
    /// <paramref name="enforcement"/>'s phases when given.
    /// </summary>
    public string Format(TimeProvider clock, InferItemResult? worker, EnforcementTiming? enforcement = null)
    {
        ArgumentNullException.ThrowIfNull(clock);
        var now = clock.GetTimestamp();
        // One string per answer, built on the stack.
        var text = new DefaultInterpolatedStringHandler(0, 0, CultureInfo.InvariantCulture, stackalloc char[384]);
        Append(ref text, "read", Started, Read, clock);
        Append(ref text, "decode", Read, Decoded, clock);
        Append(ref text, "enrich", Enrich.From, Enrich.To, clock);
        Append(ref text, "cache", Decoded, Cached, clock);
        if (Worked != 0 && worker is not null)
        {
            Append(ref text, "worker", Cached, Worked, clock);
            AppendDuration(ref text, "queue", worker.QueueMicros / 1000.0);
            text.AppendLiteral(", ");
            AppendDuration(ref text, "compute", worker.ComputeMicros / 1000.0);
            text.AppendLiteral(", batch;desc=");
            text.AppendFormatted(worker.BatchSize);
            text.AppendLiteral(", ");
        }

        Append(ref text, "encode", Worked != 0 ? Worked : Cached, Encoded != 0 ? Encoded : now, clock);
        Append(ref text, "total", Arrived != 0 ? Arrived : Started, now, clock, last: enforcement is null);
        enforcement?.AppendTo(ref text);

        return text.ToStringAndClear();
    }

    /// <summary>Appends one Server-Timing entry, <c>name;dur=milliseconds</c> (three decimals), without a separator.</summary>
    internal static void AppendDuration(ref DefaultInterpolatedStringHandler text, string name, double milliseconds)
    {
        text.AppendLiteral(name);
        text.AppendLiteral(";dur=");
        // A standard format: the custom "0.###" went through .NET's format-string interpreter, ~1 % of InferenceApi's CPU
        // for the header's nine entries.
        text.AppendFormatted(milliseconds, "F3");
    }

    private static void Append(ref DefaultInterpolatedStringHandler text, string name, long from, long to, TimeProvider clock, bool last = false)
    {
        if (from != 0 && to != 0)
        {
            AppendDuration(ref text, name, clock.GetElapsedTime(from, to).TotalMilliseconds);
            if (!last)
            {
                text.AppendLiteral(", ");
            }
        }
    }
}

/// <summary>
/// Serving, independent of the transport (REST JSON, REST binary and gRPC all go through it): resolve the model
/// version (404), then for a decoded request fill bound inputs from the feature store, validate against the
/// signature (400 naming the tensor), answer from the cache when allowed, otherwise run on a worker (falling back to an
/// older active version while the newest loads), and pick the outputs asked for. An unversioned request of a model with a
/// rollout in effect goes to the rollout's stable or candidate version as its percentage (and stickiness) says.
/// </summary>
public sealed partial class InferencePipeline(
    ServedModelCatalog catalog,
    IRolloutView rollouts,
    RolloutOutcomeRecorder outcomes,
    ShadowTraffic shadow,
    WorkerClient workers,
    ResponseCache cache,
    InferenceStatisticsStore statistics,
    InferenceMetrics metrics,
    FeatureEnricher enricher,
    IOptions<InferenceApiOptions> options,
    TimeProvider timeProvider,
    ILogger<InferencePipeline> logger)
{
    /// <summary>The model version a request names (see <see cref="ServedModelCatalog.ResolveAsync"/>).</summary>
    public Task<(ServedModel? Model, InferenceFailure? Failure)> ResolveAsync(string model, string? versionText, CancellationToken cancellationToken) =>
        catalog.ResolveAsync(model, versionText, cancellationToken);

    /// <summary>Runs a decoded request on <paramref name="served"/>.</summary>
    /// <param name="served">From <see cref="ResolveAsync"/>.</param>
    /// <param name="pinned">The request named its version: no fallback to another.</param>
    /// <param name="decoded">The request as the transport decoded it.</param>
    /// <param name="usage">Filled for the usage record; null when the caller records nothing.</param>
    /// <param name="timing">Phase timestamps.</param>
    /// <param name="cancellationToken">The client went away.</param>
    public ValueTask<(InferenceAnswer? Answer, InferenceFailure? Failure)> RunAsync(
        ServedModel served, bool pinned, InferRequest decoded, InferenceUsageFeature? usage, RequestTiming timing, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(served);
        ArgumentNullException.ThrowIfNull(decoded);
        ArgumentNullException.ThrowIfNull(timing);
        return OutputClassification.Requested(decoded.Outputs)
            ? RunClassifiedAsync(served, pinned, decoded, usage, timing, cancellationToken)
            : RunTensorsAsync(served, pinned, decoded, usage, timing, cancellationToken);
    }

    // Classification replaces outputs only in the answer to the client: the cache, the worker and a shadow copy's
    // comparison all see the tensors the model produced.
    private async ValueTask<(InferenceAnswer? Answer, InferenceFailure? Failure)> RunClassifiedAsync(
        ServedModel served, bool pinned, InferRequest decoded, InferenceUsageFeature? usage, RequestTiming timing, CancellationToken cancellationToken)
    {
        try
        {
            OutputClassification.Check(decoded.Outputs, served.Signature);
            var (answer, failure) = await RunTensorsAsync(served, pinned, decoded, usage, timing, cancellationToken);
            return answer is null
                ? (null, failure)
                : (answer with { Outputs = OutputClassification.Apply(answer.Request.Outputs, answer.Outputs, answer.Model.Signature) }, null);
        }
        catch (InferenceRequestException ex)
        {
            return (null, new InferenceFailure(400, ex.Message));
        }
    }

    private ValueTask<(InferenceAnswer? Answer, InferenceFailure? Failure)> RunTensorsAsync(
        ServedModel served, bool pinned, InferRequest decoded, InferenceUsageFeature? usage, RequestTiming timing, CancellationToken cancellationToken)
    {
        if (pinned)
        {
            return RunRouteAsync([served], decoded, usage, timing, cancellationToken);
        }

        // Without a rollout (the usual case) the route is known at once: the request goes straight to it, without an async
        // frame (and its allocation) of its own around the run.
        var routing = RouteAsync(served, decoded, cancellationToken);
        if (!routing.IsCompletedSuccessfully)
        {
            return RunRoutedAsync(routing, decoded, usage, timing, cancellationToken);
        }

        return RunOn(routing.Result, decoded, usage, timing, cancellationToken);
    }

    private async ValueTask<(InferenceAnswer? Answer, InferenceFailure? Failure)> RunRoutedAsync(
        ValueTask<(IReadOnlyList<ServedModel> Route, Rollout? Rollout)> routing, InferRequest decoded, InferenceUsageFeature? usage, RequestTiming timing,
        CancellationToken cancellationToken) =>
        await RunOn(await routing, decoded, usage, timing, cancellationToken);

    private ValueTask<(InferenceAnswer? Answer, InferenceFailure? Failure)> RunOn(
        (IReadOnlyList<ServedModel> Route, Rollout? Rollout) routed, InferRequest decoded, InferenceUsageFeature? usage, RequestTiming timing,
        CancellationToken cancellationToken) =>
        routed.Rollout is null
            ? RunRouteAsync(routed.Route, decoded, usage, timing, cancellationToken)
            : RunRolloutAsync(routed.Route, routed.Rollout, decoded, usage, timing, cancellationToken);

    private async ValueTask<(InferenceAnswer? Answer, InferenceFailure? Failure)> RunRolloutAsync(
        IReadOnlyList<ServedModel> route, Rollout rollout, InferRequest decoded, InferenceUsageFeature? usage, RequestTiming timing,
        CancellationToken cancellationToken)
    {
        // The rollout's guardrails judge what each version did with the requests it was given: status and latency, from
        // routing to the answer, are counted per role for the controller.
        var started = timeProvider.GetTimestamp();
        var status = 499;
        long answeredBy = route[0].Version;
        try
        {
            var (answer, failure) = await RunRouteAsync(route, decoded, usage, timing, cancellationToken);
            status = answer is null ? failure!.Status : 200;
            answeredBy = answer?.Model.Version ?? answeredBy;
            if (answer is not null && rollout.Mode == RolloutModes.Shadow && answer.Model.Version == rollout.StableVersion
                && RolloutRouter.ShadowCopied(rollout, decoded.Id, decoded.Parameters.EntityId, Random.Shared)
                && await workers.IsLoadedOnEveryReplicaAsync(rollout.Model, rollout.CandidateVersion, cancellationToken))
            {
                shadow.Start(rollout, answer.Request, answer.Outputs);
            }

            return (answer, failure);
        }
        finally
        {
            var role = answeredBy == rollout.CandidateVersion ? RolloutRoles.Candidate : RolloutRoles.Stable;
            outcomes.Record(rollout, role, status, timeProvider.GetElapsedTime(started));
        }
    }

    private async ValueTask<(InferenceAnswer? Answer, InferenceFailure? Failure)> RunRouteAsync(
        IReadOnlyList<ServedModel> route, InferRequest decoded, InferenceUsageFeature? usage, RequestTiming timing, CancellationToken cancellationToken)
    {
        var served = route[0];
        InferRequest request;
        try
        {
            var enrichStarted = timeProvider.GetTimestamp();
            request = await enricher.EnrichAsync(decoded, served, cancellationToken);
            timing.Enrich = ReferenceEquals(request, decoded) ? default : (enrichStarted, timeProvider.GetTimestamp());
            InferRequestValidator.Validate(request.Inputs, OutputNames(request), served.Signature, served.Name);
        }
        catch (InferenceRequestException ex)
        {
            return (null, new InferenceFailure(400, ex.Message));
        }
        catch (FeatureEnrichmentUnavailableException ex)
        {
            return (null, new InferenceFailure(ex.StatusCode, ex.Message, (int)ex.RetryAfter.TotalMilliseconds));
        }

        timing.Decoded = timeProvider.GetTimestamp();
        if (usage is not null)
        {
            usage.RequestId = request.Id;
            usage.InputElements = request.Inputs.Sum(i => i.ElementCount);
        }

        var timeout = request.Parameters.TimeoutMicroseconds is { } micros
            ? TimeSpan.FromTicks(Math.Min(micros * 10, options.Value.MaxTimeout.Ticks))
            : options.Value.DefaultTimeout;
        var deadline = timeProvider.GetUtcNow() + timeout;

        var useCache = request.Parameters.Cache ?? served.Settings.CacheEnabled;
        InferItemResult? result = null;
        bool? cacheHit = null;
        if (useCache)
        {
            var lookupStarted = timeProvider.GetTimestamp();
            result = await cache.GetAsync(ResponseCache.Key(served.Name, served.Version, request), cancellationToken);
            cacheHit = result is not null;
            await statistics.CacheLookupAsync(served.Name, served.Version, cacheHit.Value, timeProvider.GetElapsedTime(lookupStarted), cancellationToken);
            if (result is null)
            {
                metrics.CacheMiss(served.Name);
            }
            else
            {
                metrics.CacheHit(served.Name);
                usage?.Cached = true;
            }
        }

        timing.Cached = timeProvider.GetTimestamp();
        var fromWorker = false;
        if (result is null)
        {
            var (response, answeredBy, error) = await RunOnWorkerAsync(request, route, deadline, cancellationToken);
            if (error is not null)
            {
                return (null, error);
            }

            result = response!;
            served = answeredBy;
            fromWorker = true;
            timing.Worked = timeProvider.GetTimestamp();
            if (useCache)
            {
                await cache.SetAsync(ResponseCache.Key(served.Name, served.Version, request), result,
                    TimeSpan.FromSeconds(served.Settings.CacheTtlSeconds), cancellationToken);
            }
        }

        if (usage is not null)
        {
            usage.Version = served.Version;
            usage.BatchSize = result.BatchSize;
        }

        var outputs = new List<InferTensor>(result.Outputs.Count);
        if (request.Outputs.Count > 0)
        {
            foreach (var requested in request.Outputs)
            {
                var wire = result.Outputs.FirstOrDefault(o => o.Name == requested.Name);
                if (wire is null)
                {
                    return (null, new InferenceFailure(502, $"the model worker did not return output '{requested.Name}'"));
                }

                outputs.Add(FromWire(wire));
            }
        }
        else
        {
            outputs.AddRange(result.Outputs.Select(FromWire));
        }

        return (new InferenceAnswer(served, request, outputs, fromWorker ? result : null, cacheHit), null);
    }

    /// <summary>Counts a finished request in the service's metrics.</summary>
    /// <param name="model">Model name as requested.</param>
    /// <param name="version">The version that answered; null when none did.</param>
    /// <param name="status">HTTP terms.</param>
    /// <param name="started">When it arrived (<see cref="TimeProvider.GetTimestamp"/>).</param>
    public void Finished(string model, long? version, int status, long started) => metrics.Request(model, version, status, timeProvider.GetElapsedTime(started));

    /// <summary>
    /// The versions an unversioned request may run on, in order. Without a rollout: the newest active version, then the
    /// older active ones (a fallback while the newest loads or was just retired: traffic switches versions without failing
    /// requests). With a rollout: the version the rollout draws, and after the candidate the stable version; a request the
    /// rollout gives to the stable version never falls back to the candidate (so a rolled-back candidate gets nothing), and
    /// the candidate gets nothing until every worker replica has loaded and warmed it up.
    /// A version of the rollout that is not active is skipped; when neither is, the registry's choice stands.
    /// </summary>
    private async ValueTask<(IReadOnlyList<ServedModel> Route, Rollout? Rollout)> RouteAsync(ServedModel newest, InferRequest request, CancellationToken cancellationToken)
    {
        if (rollouts.Find(newest.Name) is not { } rollout)
        {
            return (catalog.RouteFrom(newest), null);
        }

        var stable = await catalog.FindAsync(newest.Name, rollout.StableVersion, cancellationToken);
        // Warm-up gate: the candidate gets traffic only once every worker replica has loaded and warmed it up.
        if (RolloutRouter.CandidateAnswers(rollout, request.Id, request.Parameters.EntityId, Random.Shared)
            && await catalog.FindAsync(newest.Name, rollout.CandidateVersion, cancellationToken) is { } candidate
            && await workers.IsLoadedOnEveryReplicaAsync(candidate.Name, candidate.Version, cancellationToken))
        {
            return (stable is null ? [candidate] : [candidate, stable], rollout);
        }

        return (stable is null ? [newest] : [stable], rollout);
    }

    private async ValueTask<(InferItemResult? Response, ServedModel AnsweredBy, InferenceFailure? Error)> RunOnWorkerAsync(
        InferRequest request, IReadOnlyList<ServedModel> route, DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        var served = route[0];
        InferenceFailure? lastError = null;
        foreach (var candidate in route)
        {
            if (candidate != served && !SignatureAccepts(request, candidate))
            {
                continue;
            }

            var call = await workers.InferAsync(candidate.Name, candidate.Version, ToWire(request, deadline), deadline, cancellationToken);
            if (call.Result is not null)
            {
                return (call.Result, candidate, null);
            }

            var error = call.Error!;
            var failure = error.Status == 404
                // The registry says this version is active, so a worker without it is behind, not the client wrong.
                ? new InferenceFailure(503, $"model '{candidate.Name}' version {candidate.Version} is not loaded on any model worker yet", 1000)
                : new InferenceFailure(error.Status, error.Message, error.RetryAfterMs);
            LogWorkerError(logger, candidate.Name, candidate.Version, failure.Status, failure.Message, call.Attempts);
            if (route.Count == 1 || failure.Status != 503)
            {
                return (null, candidate, failure);
            }

            lastError = failure;
        }

        return (null, served, lastError);
    }

    private static bool SignatureAccepts(InferRequest request, ServedModel model)
    {
        try
        {
            InferRequestValidator.Validate(request.Inputs, OutputNames(request), model.Signature, model.Name);
            return true;
        }
        catch (InferenceRequestException)
        {
            return false;
        }
    }

    private static InferItem ToWire(InferRequest request, DateTimeOffset deadline)
    {
        var item = new InferItem { RequestId = request.Id ?? string.Empty, DeadlineUnixMs = deadline.ToUnixTimeMilliseconds() };
        // Indexed loops: a foreach over the interfaces would allocate an enumerator per request.
        for (var i = 0; i < request.Inputs.Count; i++)
        {
            var input = request.Inputs[i];
            var tensor = new Tensor
            {
                Name = input.Name,
                Datatype = input.DataType.ToWire(),
                // Wraps the request's buffer: serialising the message is the only copy on the way to the worker.
                Data = UnsafeByteOperations.UnsafeWrap(input.Data),
            };
            tensor.Shape.AddRange(input.Shape);
            item.Inputs.Add(tensor);
        }

        for (var i = 0; i < request.Outputs.Count; i++)
        {
            item.Outputs.Add(request.Outputs[i].Name);
        }

        return item;
    }

    // Most requests name no outputs: no iterator for them.
    private static IEnumerable<string> OutputNames(InferRequest request) =>
        request.Outputs.Count == 0 ? [] : request.Outputs.Select(o => o.Name);

    private static InferTensor FromWire(Tensor wire) =>
        new(wire.Name,
            DataTypes.TryFromWire(wire.Datatype, out var type) ? type : throw new InvalidOperationException($"worker sent unknown datatype {wire.Datatype}"),
            [.. wire.Shape],
            wire.Data.Memory);

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning, Message = "Model {Model} version {Version}: worker error {Status} after {Attempts} attempts: {Reason}")]
    private static partial void LogWorkerError(ILogger logger, string model, long version, int status, string reason, int attempts);
}
