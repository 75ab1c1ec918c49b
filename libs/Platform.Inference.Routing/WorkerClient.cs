using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Platform.Inference.Protocol.Wire;
using Platform.WorkerDiscovery;

namespace Platform.Inference.Routing;

/// <summary>Outcome of a worker call: a response, or the error to give the client.</summary>
/// <param name="Response">The worker's answer when it succeeded.</param>
/// <param name="Error">Why it failed: the worker's own <see cref="WorkerError"/>, or one made here (unreachable, deadline).</param>
/// <param name="Attempts">Attempts made across replicas.</param>
public sealed record WorkerCallResult(WorkerInferResponse? Response, WorkerError? Error, int Attempts);

/// <summary>
/// Sends <see cref="WorkerInferRequest"/>s to the model-worker replicas: protobuf over HTTP/2 with prior knowledge
/// (h2c), one pooled <see cref="SocketsHttpHandler"/> multiplexing many streams per connection. Picks the replica with
/// the fewest requests in flight and moves to another replica when one fails before answering (connection refused or
/// reset), is unavailable (503), full (429) or does not have the model version (404: while a version rolls out, a replica
/// that has not loaded it yet must not fail a request another replica can serve). Inference is a pure function of its
/// inputs, so resending a request whose connection broke mid-flight is safe.
/// </summary>
public sealed partial class WorkerClient : IDisposable
{
    /// <summary>Content type of both directions.</summary>
    public const string ContentType = "application/x-protobuf";

    private static readonly MediaTypeHeaderValue ProtobufMediaType = new(ContentType);
    private readonly HttpClient _http;
    private readonly IWorkerDirectory _workers;
    private readonly ReplicaBalancer _balancer;
    private readonly WorkerRoutingOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<WorkerClient> _logger;
    private readonly Counter<long> _attempts;
    private readonly Counter<long> _retries;
    private readonly ConcurrentDictionary<(string Model, long Version), ReadinessEntry> _readiness = new();

    /// <summary>Creates the client and its connection pool.</summary>
    public WorkerClient(
        IWorkerDirectory workers,
        IOptions<WorkerRoutingOptions> options,
        TimeProvider timeProvider,
        IMeterFactory meterFactory,
        ILogger<WorkerClient> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(meterFactory);
        _workers = workers;
        _options = options.Value;
        _timeProvider = timeProvider;
        _logger = logger;
        _balancer = new ReplicaBalancer(timeProvider, _options.FailureCooldown, _options.PackBelow);
        var handler = new SocketsHttpHandler
        {
            // One connection's stream limit (Kestrel: 100) must not cap concurrency to a replica.
            EnableMultipleHttp2Connections = true,
            ConnectTimeout = _options.ConnectTimeout,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
        };
        _http = new HttpClient(handler)
        {
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            // Deadlines are per request (linked tokens), not one client-wide timeout.
            Timeout = Timeout.InfiniteTimeSpan,
        };
        var meter = meterFactory.Create("Platform.Inference.Routing");
        _attempts = meter.CreateCounter<long>("platform.routing.worker_attempts", description: "Requests sent to worker replicas, by outcome");
        _retries = meter.CreateCounter<long>("platform.routing.worker_retries", description: "Requests moved to another replica, by reason");
        meter.CreateObservableGauge("platform.routing.outstanding", () =>
            _balancer.Snapshot().Select(s => new Measurement<int>(s.Outstanding, new KeyValuePair<string, object?>("replica", s.Address.Authority))),
            description: "Requests in flight per worker replica");
    }

    /// <summary>The balancer's view of the replicas (for health and diagnostics).</summary>
    public IReadOnlyList<ReplicaStatus> Replicas => _balancer.Snapshot();

    /// <summary>Runs <paramref name="request"/> on some replica before <paramref name="deadline"/>.</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (the client went away).</exception>
    public async Task<WorkerCallResult> InferAsync(WorkerInferRequest request, DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.DeadlineUnixMs = deadline.ToUnixTimeMilliseconds();
        if (string.IsNullOrEmpty(request.TraceParent) && Activity.Current is { } activity)
        {
            request.TraceParent = activity.Id ?? string.Empty;
        }

        // Serialised once: a retry resends the same bytes.
        var payload = request.ToByteArray();
        var remaining = deadline - _timeProvider.GetUtcNow();
        if (remaining <= TimeSpan.Zero)
        {
            return new WorkerCallResult(null, DeadlineExceeded(), 0);
        }

        using var deadlineCts = new CancellationTokenSource(remaining, _timeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadlineCts.Token);
        var tried = new List<Uri>(2);
        WorkerError? lastError = null;
        var lastErrorRank = 0;
        var attempts = 0;
        try
        {
            while (attempts < _options.MaxAttempts)
            {
                var addresses = _workers.Workers.Select(w => w.Address).ToArray();
                using var lease = _balancer.Acquire(addresses, tried);
                if (lease is null)
                {
                    // Every replica was tried: start over after a pause (a worker restarting or still loading the model).
                    tried.Clear();
                    await Task.Delay(_options.RetryBackoff, _timeProvider, linked.Token);
                    continue;
                }

                attempts++;
                var replica = lease.Replica;
                var outcome = await SendAsync(replica, payload, linked.Token);
                if (outcome.Response is not null)
                {
                    _balancer.ReportSuccess(replica);
                    _attempts.Add(1, new KeyValuePair<string, object?>("outcome", "ok"));
                    return new WorkerCallResult(outcome.Response, null, attempts);
                }

                var error = outcome.Error!;
                var reason = outcome.Unreachable ? "unreachable" : error.Code.ToString(System.Globalization.CultureInfo.InvariantCulture);
                _attempts.Add(1, new KeyValuePair<string, object?>("outcome", reason));
                if (!outcome.Unreachable && error.Code is not (503 or 429 or 404))
                {
                    return new WorkerCallResult(null, error, attempts);
                }

                if (outcome.Unreachable)
                {
                    _balancer.ReportFailure(replica);
                }

                // Keep the most informative error for the caller if no replica answers: full (429) beats unavailable or
                // loading (503), which beats "not on this replica" (404), which beats unreachable.
                var rank = Informativeness(error.Code, outcome.Unreachable);
                if (rank >= lastErrorRank)
                {
                    lastError = error;
                    lastErrorRank = rank;
                }

                tried.Add(replica);
                _retries.Add(1, new KeyValuePair<string, object?>("reason", reason));
                LogRetry(_logger, replica.Authority, reason, error.Message);
            }
        }
        catch (OperationCanceledException) when (deadlineCts.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return new WorkerCallResult(null, DeadlineExceeded(), attempts);
        }

        return new WorkerCallResult(null, lastError ?? new WorkerError { Code = 503, Message = "no model worker answered" }, attempts);
    }

    /// <summary>
    /// Whether at least one replica has <paramref name="model"/> version <paramref name="version"/> loaded and ready, as
    /// the replicas report it (<see cref="WorkerRoutingOptions.ReadyPathTemplate"/>). Asks every replica at once and
    /// reuses the answer for <see cref="WorkerRoutingOptions.ReadinessCacheDuration"/>. An unreachable replica counts as
    /// not having it.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async Task<bool> IsLoadedOnAnyReplicaAsync(string model, long version, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        var key = (model, version);
        var now = _timeProvider.GetTimestamp();
        if (_readiness.TryGetValue(key, out var cached) && now < cached.ExpiresAt)
        {
            return cached.Ready;
        }

        var endpoints = _workers.Workers;

        var path = _options.ReadyPathTemplate
            .Replace("{name}", Uri.EscapeDataString(model), StringComparison.Ordinal)
            .Replace("{version}", version.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.ConnectTimeout);
        var answers = await Task.WhenAll(endpoints.Select(e => IsReadyAsync(new Uri(e.Address, path), timeout.Token)));
        cancellationToken.ThrowIfCancellationRequested();
        var ready = answers.Any(a => a);
        // Measured from the answer, not the question: a slow fan-out must not leave an already stale entry.
        var expires = _timeProvider.GetTimestamp() + (long)(_options.ReadinessCacheDuration.TotalSeconds * _timeProvider.TimestampFrequency);
        _readiness[key] = new ReadinessEntry(ready, expires);
        return ready;
    }

    /// <inheritdoc />
    public void Dispose() => _http.Dispose();

    private async Task<bool> IsReadyAsync(Uri uri, CancellationToken cancellationToken)
    {
        try
        {
            using var response = await _http.GetAsync(uri, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            return response.StatusCode == HttpStatusCode.OK;
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException)
        {
            // Unreachable, or no answer within the connect timeout: this replica does not count as having it. (A caller
            // that left is noticed by the caller.)
            return false;
        }
    }

    private async Task<Outcome> SendAsync(Uri replica, byte[] payload, CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, new Uri(replica, _options.InferPath))
        {
            Content = new ByteArrayContent(payload) { Headers = { ContentType = ProtobufMediaType } },
            // HttpClient's DefaultRequestVersion applies only to the messages it builds itself; a message built here would
            // otherwise go out as HTTP/1.1 (one connection per request in flight) instead of h2c streams.
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        try
        {
            using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            var body = await response.Content.ReadAsByteArrayAsync(cancellationToken);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                return new Outcome(WorkerInferResponse.Parser.ParseFrom(body), null, false);
            }

            return new Outcome(null, ParseError(response, body), false);
        }
        catch (HttpRequestException ex) when (!cancellationToken.IsCancellationRequested)
        {
            return new Outcome(null, new WorkerError { Code = 503, Message = $"model worker {replica.Authority} unreachable: {ex.Message}" }, true);
        }
        catch (IOException ex) when (!cancellationToken.IsCancellationRequested)
        {
            // The connection broke while the body was streaming back.
            return new Outcome(null, new WorkerError { Code = 503, Message = $"model worker {replica.Authority} connection lost: {ex.Message}" }, true);
        }
        catch (InvalidProtocolBufferException ex)
        {
            return new Outcome(null, new WorkerError { Code = 502, Message = $"model worker {replica.Authority} sent an unreadable response: {ex.Message}" }, false);
        }
    }

    private static WorkerError ParseError(HttpResponseMessage response, byte[] body)
    {
        var status = (int)response.StatusCode;
        WorkerError? error = null;
        if (response.Content.Headers.ContentType?.MediaType == ContentType)
        {
            try
            {
                error = WorkerError.Parser.ParseFrom(body);
            }
            catch (InvalidProtocolBufferException)
            {
                error = null;
            }
        }

        error ??= new WorkerError { Code = status, Message = $"model worker answered {status} {response.ReasonPhrase}" };
        if (error.Code == 0)
        {
            error.Code = status;
        }

        if (error.RetryAfterMs == 0 && response.Headers.RetryAfter?.Delta is { } delta)
        {
            error.RetryAfterMs = (int)Math.Min(int.MaxValue, delta.TotalMilliseconds);
        }

        return error;
    }

    private static int Informativeness(int code, bool unreachable) => unreachable ? 0 : code switch
    {
        429 => 3,
        503 => 2,
        _ => 1,
    };

    private static WorkerError DeadlineExceeded() => new() { Code = 504, Message = "the request's deadline passed before a model worker answered" };

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Worker {Replica} did not take the request ({Reason}: {Detail}); trying another replica")]
    private static partial void LogRetry(ILogger logger, string replica, string reason, string detail);

    private sealed record Outcome(WorkerInferResponse? Response, WorkerError? Error, bool Unreachable);

    private sealed record ReadinessEntry(bool Ready, long ExpiresAt);
}
