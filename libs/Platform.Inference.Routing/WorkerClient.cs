using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Platform.Inference.Protocol;
using Platform.Inference.Protocol.Wire;
using InferCoalescer = Platform.Coalescing.Coalescer<(string Model, long Version), Platform.Inference.Routing.QueuedInfer, Platform.Inference.Routing.WorkerCallResult>;

namespace Platform.Inference.Routing;

/// <summary>Why a worker call failed, as the caller should answer it.</summary>
/// <param name="Status">HTTP status equivalent: 400 (bad request), 404 (version not on any replica), 429 (queues full),
/// 500 (inference failed), 502 (unreadable answer), 503 (unavailable, loading, unreachable), 504 (deadline).</param>
/// <param name="Message">What went wrong, for the client.</param>
/// <param name="RetryAfterMs">For 429 and 503: when to come back (0 when the worker did not say).</param>
public sealed record WorkerFailure(int Status, string Message, int RetryAfterMs = 0);

/// <summary>Outcome of a worker call: the request's result, or the failure to give the client.</summary>
/// <param name="Result">The worker's result when it succeeded.</param>
/// <param name="Version">The version that ran (the request's, or the replica's highest active one for version 0).</param>
/// <param name="WorkerInstance">The replica that answered.</param>
/// <param name="Error">Why it failed.</param>
/// <param name="Attempts">Attempts made across replicas.</param>
public sealed record WorkerCallResult(InferItemResult? Result, long Version, string? WorkerInstance, WorkerFailure? Error, int Attempts);

/// <summary>One replica's statistics.</summary>
/// <param name="Replica">The replica.</param>
/// <param name="Statistics">Its statistics; null when it could not be reached.</param>
/// <param name="Error">Why it could not be asked.</param>
public sealed record ReplicaStatistics(WorkerReplica Replica, ModelStatisticsResponse? Statistics, string? Error);

/// <summary>
/// Calls the model-worker replicas' gRPC service (<c>platform.worker.v1.ModelWorker</c>) over HTTP/2: one
/// <see cref="GrpcChannel"/> per replica, all sharing one <see cref="SocketsHttpHandler"/> that opens more HTTP/2
/// connections when one's stream limit is reached. Picks the replica with the fewest requests in flight and moves to
/// another replica when one fails before answering (unreachable, reset), is unavailable (loading, unloading), full
/// (RESOURCE_EXHAUSTED) or does not have the model version (NOT_FOUND: while a version rolls out, a replica that has
/// not loaded it yet must not fail a request another replica can serve). Inference is a pure function of its inputs,
/// so resending a request whose connection broke mid-flight is safe. The request's deadline is the call's gRPC deadline.
/// </summary>
public sealed partial class WorkerClient : IDisposable
{
    private readonly SocketsHttpHandler _handler;
    private readonly ConcurrentDictionary<Uri, ModelWorker.ModelWorkerClient> _clients = new();
    private readonly ConcurrentBag<GrpcChannel> _channels = [];
    private readonly IWorkerReplicaSource _replicas;
    private readonly ReplicaBalancer _balancer;
    private readonly WorkerRoutingOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<WorkerClient> _logger;
    private readonly Counter<long> _attempts;
    private readonly Counter<long> _retries;
    private readonly ConcurrentDictionary<(string Model, long Version), ReadinessEntry> _readiness = new();
    private readonly InferCoalescer? _coalescer;
    private readonly Histogram<int> _coalesced;
    private readonly CallCredentials _credentials;

    /// <summary>Creates the client and its connection pool.</summary>
    public WorkerClient(
        IWorkerReplicaSource replicas,
        IOptions<WorkerRoutingOptions> options,
        TimeProvider timeProvider,
        IMeterFactory meterFactory,
        ILogger<WorkerClient> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(meterFactory);
        _replicas = replicas;
        _options = options.Value;
        _timeProvider = timeProvider;
        _logger = logger;
        _balancer = new ReplicaBalancer(timeProvider, _options.FailureCooldown, _options.PackBelow);
        var key = _options.InternalApiKey is { Length: > 0 } configured
            ? configured
            : throw new ArgumentException($"{nameof(WorkerRoutingOptions.InternalApiKey)} is required: model workers refuse calls without the internal credential", nameof(options));
        var header = InternalCredential.HeaderValue(key);
        _credentials = CallCredentials.FromInterceptor((_, metadata) =>
        {
            metadata.Add(InternalCredential.Header, header);
            return Task.CompletedTask;
        });
        _handler = new SocketsHttpHandler
        {
            // One connection's stream limit (Kestrel: 100) must not cap concurrency to a replica.
            EnableMultipleHttp2Connections = true,
            ConnectTimeout = _options.ConnectTimeout,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            KeepAlivePingDelay = _options.KeepAlivePingDelay,
            KeepAlivePingTimeout = _options.KeepAlivePingTimeout,
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
        };
        var meter = meterFactory.Create("Platform.Inference.Routing");
        _attempts = meter.CreateCounter<long>("platform.routing.worker_attempts", description: "Requests sent to worker replicas, by outcome");
        _retries = meter.CreateCounter<long>("platform.routing.worker_retries", description: "Requests moved to another replica, by reason");
        _coalesced = meter.CreateHistogram<int>("platform.routing.coalesced_requests", unit: "{request}",
            description: "Requests that shared one worker call (calls of more than one request)");
        _coalescer = _options.CoalesceCallsInFlight > 0 && _options.CoalesceMaxItems > 1
            ? new InferCoalescer(_options.CoalesceCallsInFlight, _options.CoalesceMaxItems,
                (key, batch) => SendBatchAsync(key.Model, key.Version, batch))
            : null;
        meter.CreateObservableGauge("platform.routing.outstanding", () =>
            _balancer.Snapshot().Select(s => new Measurement<int>(s.Outstanding, new KeyValuePair<string, object?>("replica", s.Address.Authority))),
            description: "Requests in flight per worker replica");
    }

    /// <summary>The balancer's view of the replicas (for health and diagnostics).</summary>
    public IReadOnlyList<ReplicaStatus> Replicas => _balancer.Snapshot();

    /// <summary>The replicas the source knows now.</summary>
    public ValueTask<IReadOnlyList<WorkerReplica>> GetReplicasAsync(CancellationToken cancellationToken) => _replicas.GetReplicasAsync(cancellationToken);

    /// <summary>
    /// Runs one request for <paramref name="model"/> <paramref name="version"/> on some replica before <paramref name="deadline"/>.
    /// Concurrent requests for the same version share worker calls (see <see cref="WorkerRoutingOptions.CoalesceCallsInFlight"/>);
    /// each still gets its own result or error.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (the client went away).</exception>
    public Task<WorkerCallResult> InferAsync(string model, long version, InferItem item, DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(item);
        if (item.DeadlineUnixMs == 0)
        {
            // In a shared call each request keeps its own deadline: the worker drops the ones past it.
            item.DeadlineUnixMs = deadline.ToUnixTimeMilliseconds();
        }

        return _coalescer is null
            ? InferAloneAsync(model, version, item, deadline, [], cancellationToken)
            // A caller that leaves stops waiting; the shared call goes on for the others.
            : _coalescer.EnqueueAsync((model, version), new QueuedInfer(item, deadline)).WaitAsync(cancellationToken);
    }

    private async Task<WorkerCallResult> InferAloneAsync(string model, long version, InferItem item, DateTimeOffset deadline, List<Uri> tried,
        CancellationToken cancellationToken)
    {
        var call = await CallAsync(new InferBatchRequest { Model = model, Version = version, Items = { item } }, deadline, tried, cancellationToken);
        if (call.Response is not { } response)
        {
            return new WorkerCallResult(null, version, null, call.Error, call.Attempts);
        }

        var result = response.Results[0];
        return result.Error is null
            ? new WorkerCallResult(result, response.Version, response.WorkerInstance, null, call.Attempts)
            : new WorkerCallResult(null, version, null, ToFailure(result.Error), call.Attempts);
    }

    /// <summary>Sends one shared call for the coalescer's <paramref name="batch"/> and completes each request with its own outcome.</summary>
    private async Task SendBatchAsync(string model, long version, IReadOnlyList<InferCoalescer.Entry> batch)
    {
        if (batch.Count == 1)
        {
            var only = batch[0];
            only.Completion.TrySetResult(await InferAloneAsync(model, version, only.Item.Item, only.Item.Deadline, [], CancellationToken.None));
            return;
        }

        var request = new InferBatchRequest { Model = model, Version = version };
        var deadline = DateTimeOffset.MinValue;
        foreach (var pending in batch)
        {
            request.Items.Add(pending.Item.Item);
            deadline = pending.Item.Deadline > deadline ? pending.Item.Deadline : deadline;
        }

        _coalesced.Record(batch.Count);
        var tried = new List<Uri>(2);
        var call = await CallAsync(request, deadline, tried, CancellationToken.None);
        if (call.Response is not { } response)
        {
            foreach (var pending in batch)
            {
                pending.Completion.TrySetResult(new WorkerCallResult(null, version, null, call.Error, call.Attempts));
            }

            return;
        }

        for (var i = 0; i < batch.Count; i++)
        {
            var pending = batch[i];
            var result = response.Results[i];
            if (result.Error is null)
            {
                pending.Completion.TrySetResult(new WorkerCallResult(result, response.Version, response.WorkerInstance, null, call.Attempts));
            }
            else if (IsRetryable(result.Error))
            {
                // Only some of the call's requests were refused (that replica's queue filled up mid-call): those move on
                // alone, to the replicas not tried yet.
                _ = RetryAloneAsync(model, version, pending, [.. tried]);
            }
            else
            {
                pending.Completion.TrySetResult(new WorkerCallResult(null, version, null, ToFailure(result.Error), call.Attempts));
            }
        }
    }

    private async Task RetryAloneAsync(string model, long version, InferCoalescer.Entry pending, List<Uri> tried)
    {
        try
        {
            pending.Completion.TrySetResult(await InferAloneAsync(model, version, pending.Item.Item, pending.Item.Deadline, tried, CancellationToken.None));
        }
        catch (Exception ex)
        {
            pending.Completion.TrySetException(ex);
        }
    }

    private static bool IsRetryable(ItemError error) => MovesToAnotherReplica(HttpStatusOf((StatusCode)error.Code));

    /// <summary>Unavailable, full or not loaded here: another replica may serve what this one did not.</summary>
    private static bool MovesToAnotherReplica(int status) => status is 503 or 429 or 404;

    /// <summary>
    /// Sends <paramref name="request"/> to replicas until one takes it: a replica that is unreachable, unavailable, full or
    /// without the version, or that refuses every request of the call for one of those reasons, is left for another.
    /// </summary>
    private async Task<CallOutcome> CallAsync(InferBatchRequest request, DateTimeOffset deadline, List<Uri> tried, CancellationToken cancellationToken)
    {
        WorkerFailure? lastError = null;
        var lastErrorRank = -1;
        var attempts = 0;
        while (attempts < _options.MaxAttempts)
        {
            if (deadline <= _timeProvider.GetUtcNow())
            {
                return new CallOutcome(null, DeadlineExceeded(), attempts);
            }

            var replicas = await _replicas.GetReplicasAsync(cancellationToken);
            var addresses = replicas.Select(r => r.GrpcAddress).ToArray();
            using var lease = _balancer.Acquire(addresses, tried);
            if (lease is null)
            {
                if (addresses.Length == 0)
                {
                    // Nothing to try: each pause counts as an attempt, so an empty replica list fails within MaxAttempts pauses.
                    lastError ??= new WorkerFailure(503, "no model worker is known (none registered in service discovery)", 1000);
                    attempts++;
                }

                // Every replica was tried: start over after a pause (a worker restarting or still loading the model).
                tried.Clear();
                var pause = TimeSpan.FromTicks(Math.Min(_options.RetryBackoff.Ticks, (deadline - _timeProvider.GetUtcNow()).Ticks));
                if (pause > TimeSpan.Zero)
                {
                    await Task.Delay(pause, _timeProvider, cancellationToken);
                }

                continue;
            }

            attempts++;
            var replica = lease.Replica;
            var outcome = await SendAsync(replica, request, deadline, cancellationToken);
            if (outcome.Response is { } response)
            {
                _balancer.ReportSuccess(replica);
                if (response.Results.Count != request.Items.Count)
                {
                    return new CallOutcome(null, new WorkerFailure(502,
                        $"model worker {replica.Authority} answered {response.Results.Count} results for {request.Items.Count} requests"), attempts);
                }

                var refused = response.Results.FirstOrDefault(r => r.Error is not null);
                if (refused is null || !response.Results.All(r => r.Error is not null && IsRetryable(r.Error)))
                {
                    _attempts.Add(1, new KeyValuePair<string, object?>("outcome", "ok"));
                    tried.Add(replica);
                    return new CallOutcome(response, null, attempts);
                }

                outcome = outcome with { Error = ToFailure(refused.Error) };
            }

            var error = outcome.Error!;
            var reason = outcome.Unreachable ? "unreachable" : error.Status.ToString(CultureInfo.InvariantCulture);
            _attempts.Add(1, new KeyValuePair<string, object?>("outcome", reason));
            if (!outcome.Unreachable && !MovesToAnotherReplica(error.Status))
            {
                return new CallOutcome(null, error, attempts);
            }

            if (outcome.Unreachable)
            {
                _balancer.ReportFailure(replica);
            }

            // Keep the most informative error for the caller if no replica answers: full (429) beats unavailable or
            // loading (503), which beats "not on this replica" (404), which beats unreachable.
            var rank = Informativeness(error.Status, outcome.Unreachable);
            if (rank >= lastErrorRank)
            {
                lastError = error;
                lastErrorRank = rank;
            }

            tried.Add(replica);
            _retries.Add(1, new KeyValuePair<string, object?>("reason", reason));
            LogRetry(_logger, replica.Authority, reason, error.Message);
        }

        return new CallOutcome(null, lastError ?? new WorkerFailure(503, "no model worker answered", 1000), attempts);
    }

    /// <summary>
    /// Whether at least one replica has <paramref name="model"/> version <paramref name="version"/> loaded and ready, as
    /// the replicas report it (their ModelStates RPC). Asks every replica at once and reuses the answer for
    /// <see cref="WorkerRoutingOptions.ReadinessCacheDuration"/>. An unreachable replica counts as not having it.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async Task<bool> IsLoadedOnAnyReplicaAsync(string model, long version, CancellationToken cancellationToken) =>
        (await ReadinessAsync(model, version, cancellationToken)).Any;

    /// <summary>
    /// Whether every announced replica has <paramref name="model"/> version <paramref name="version"/> loaded, warmed up
    /// and ready (false without replicas); same fan-out and cache as <see cref="IsLoadedOnAnyReplicaAsync"/>. Rollouts
    /// give a candidate no traffic before this holds, so no request of it lands on a replica still loading it.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async Task<bool> IsLoadedOnEveryReplicaAsync(string model, long version, CancellationToken cancellationToken) =>
        (await ReadinessAsync(model, version, cancellationToken)).Every;

    private async Task<ReadinessEntry> ReadinessAsync(string model, long version, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        var key = (model, version);
        var now = _timeProvider.GetTimestamp();
        if (_readiness.TryGetValue(key, out var cached) && now < cached.ExpiresAt)
        {
            return cached;
        }

        var replicas = await _replicas.GetReplicasAsync(cancellationToken);
        var deadline = _timeProvider.GetUtcNow() + _options.ConnectTimeout;
        var answers = await Task.WhenAll(replicas.Select(async r =>
        {
            try
            {
                var states = await Client(r.GrpcAddress).ModelStatesAsync(new ModelStatesRequest { Model = model, Version = version },
                    new CallOptions(deadline: deadline.UtcDateTime, cancellationToken: cancellationToken));
                return states.Models.Any(m => m.State == LoadState.Ready);
            }
            catch (RpcException)
            {
                // Unreachable, or no answer within the connect timeout: this replica does not count as having it. (A
                // caller that left is noticed below.)
                return false;
            }
        }));
        cancellationToken.ThrowIfCancellationRequested();
        // Measured from the answer, not the question: a slow fan-out must not leave an already stale entry.
        var expires = _timeProvider.GetTimestamp() + (long)(_options.ReadinessCacheDuration.TotalSeconds * _timeProvider.TimestampFrequency);
        var entry = new ReadinessEntry(answers.Any(a => a), answers.Length > 0 && answers.All(a => a), expires);
        _readiness[key] = entry;
        return entry;
    }

    // A replica answers a call only with the version loaded and ready, so its answer overrides a cached "no replica has it"
    // read while the version was still loading: otherwise readiness would say no, for up to the cache's duration, about a
    // version that has just answered. (Whether every replica has it stays as read.)
    private void Served(string model, long version)
    {
        var key = (model, version);
        if (_readiness.TryGetValue(key, out var cached) && !cached.Any)
        {
            _readiness.TryUpdate(key, cached with { Any = true }, cached);
        }
    }

    /// <summary>Asks every replica for its statistics of <paramref name="model"/> (empty: all) version <paramref name="version"/> (0: all).</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async Task<IReadOnlyList<ReplicaStatistics>> GetStatisticsAsync(string model, long version, CancellationToken cancellationToken)
    {
        var replicas = await _replicas.GetReplicasAsync(cancellationToken);
        var deadline = _timeProvider.GetUtcNow() + _options.ConnectTimeout + TimeSpan.FromSeconds(3);
        var answers = await Task.WhenAll(replicas.Select(async r =>
        {
            try
            {
                var statistics = await Client(r.GrpcAddress).ModelStatisticsAsync(new ModelStatisticsRequest { Model = model, Version = version },
                    new CallOptions(deadline: deadline.UtcDateTime, cancellationToken: cancellationToken));
                return new ReplicaStatistics(r, statistics, null);
            }
            catch (RpcException ex)
            {
                return new ReplicaStatistics(r, null, $"{ex.StatusCode}: {ex.Status.Detail}");
            }
        }));
        cancellationToken.ThrowIfCancellationRequested();
        return answers;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var channel in _channels)
        {
            channel.Dispose();
        }

        _handler.Dispose();
    }

    private ModelWorker.ModelWorkerClient Client(Uri address) =>
        _clients.GetOrAdd(address, a =>
        {
            var channel = GrpcChannel.ForAddress(a, new GrpcChannelOptions
            {
                HttpHandler = _handler,
                DisposeHttpClient = false,
                MaxReceiveMessageSize = _options.MaxMessageBytes,
                MaxSendMessageSize = _options.MaxMessageBytes,
                // The hop is h2c inside the cluster (NetworkPolicy-bound); the credential rides on every call regardless.
                Credentials = ChannelCredentials.Create(ChannelCredentials.Insecure, _credentials),
                UnsafeUseInsecureChannelCallCredentials = true,
            });
            _channels.Add(channel);
            return new ModelWorker.ModelWorkerClient(channel);
        });

    private async Task<Outcome> SendAsync(Uri replica, InferBatchRequest request, DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        try
        {
            var response = await Client(replica).InferAsync(request, new CallOptions(deadline: deadline.UtcDateTime, cancellationToken: cancellationToken));
            Served(request.Model, response.Version);
            return new Outcome(response, null, false);
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException("the caller went away", ex, cancellationToken);
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.DeadlineExceeded)
        {
            return new Outcome(null, DeadlineExceeded(), false);
        }
        catch (RpcException ex) when (ex.StatusCode is StatusCode.Unavailable or StatusCode.Internal or StatusCode.Unknown && ex.Status.DebugException is not null)
        {
            // The call never reached the service or its connection broke: the transport's failure, not the worker's answer.
            return new Outcome(null, new WorkerFailure(503, $"model worker {replica.Authority} unreachable: {ex.Status.DebugException.Message}"), true);
        }
        catch (RpcException ex) when (ex.StatusCode is StatusCode.Unauthenticated or StatusCode.PermissionDenied)
        {
            // A worker holding another credential (a rotation half done, or a misconfiguration): the platform's fault, not
            // the client's. Avoid that replica like an unreachable one and let another serve.
            LogCredentialRefused(_logger, replica.Authority, ex.Status.Detail);
            return new Outcome(null, new WorkerFailure(503, $"model worker {replica.Authority} refused this service's internal credential", 1000), true);
        }
        catch (RpcException ex)
        {
            return new Outcome(null, ToFailure(ex, replica), false);
        }
    }

    private static WorkerFailure ToFailure(RpcException ex, Uri replica)
    {
        var retryAfter = int.TryParse(ex.Trailers.GetValue(WorkerProtocol.RetryAfterTrailer), NumberStyles.None, CultureInfo.InvariantCulture, out var ms) ? ms : 0;
        var message = ex.Status.Detail.Length > 0 ? ex.Status.Detail : $"model worker {replica.Authority} answered {ex.StatusCode}";
        return new WorkerFailure(HttpStatusOf(ex.StatusCode), message, retryAfter);
    }

    private static WorkerFailure ToFailure(ItemError error) =>
        new(HttpStatusOf((StatusCode)error.Code), error.Message, error.RetryAfterMs);

    /// <summary>The HTTP status a gRPC status of the worker stands for.</summary>
    public static int HttpStatusOf(StatusCode code) => code switch
    {
        StatusCode.InvalidArgument or StatusCode.OutOfRange or StatusCode.FailedPrecondition => 400,
        StatusCode.NotFound => 404,
        StatusCode.ResourceExhausted => 429,
        StatusCode.Unavailable or StatusCode.Aborted => 503,
        StatusCode.DeadlineExceeded => 504,
        StatusCode.Cancelled => 499,
        _ => 500,
    };

    private static int Informativeness(int status, bool unreachable) => unreachable ? 0 : status switch
    {
        429 => 3,
        503 => 2,
        _ => 1,
    };

    private static WorkerFailure DeadlineExceeded() => new(504, "the request's deadline passed before a model worker answered");

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Worker {Replica} did not take the request ({Reason}: {Detail}); trying another replica")]
    private static partial void LogRetry(ILogger logger, string replica, string reason, string detail);

    [LoggerMessage(EventId = 2, Level = LogLevel.Error, Message = "Worker {Replica} refused the internal credential ({Detail}): is Parameters:internal-api-key the same on both sides?")]
    private static partial void LogCredentialRefused(ILogger logger, string replica, string detail);

    private sealed record Outcome(InferBatchResponse? Response, WorkerFailure? Error, bool Unreachable);

    private sealed record CallOutcome(InferBatchResponse? Response, WorkerFailure? Error, int Attempts);

    private sealed record ReadinessEntry(bool Any, bool Every, long ExpiresAt);
}

/// <summary>A request waiting to share a worker call: its item and its own deadline.</summary>
internal sealed record QueuedInfer(InferItem Item, DateTimeOffset Deadline);
