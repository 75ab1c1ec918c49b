using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Options;
using Platform.InferenceApi.Serving;
using Platform.Tenancy;
using Platform.Tenancy.Enforcement;

namespace Platform.InferenceApi.Tenancy;

/// <summary>What the serving pipeline learned about a request, for its usage record.</summary>
public sealed class InferenceUsageFeature
{
    /// <summary>The model version that answered (0 when none did).</summary>
    public long Version { get; set; }

    /// <summary>Rows ONNX Runtime ran together with this request (0 when no worker ran it).</summary>
    public int BatchSize { get; set; }

    /// <summary>Elements across all input tensors (what a per-element price multiplies).</summary>
    public long InputElements { get; set; }

    /// <summary>Whether the answer came from the response cache.</summary>
    public bool Cached { get; set; }

    /// <summary>The request's <c>id</c>, if it had one.</summary>
    public string? RequestId { get; set; }
}

/// <summary>Enforcement's phases of one request, for Server-Timing on both transports.</summary>
/// <param name="Authenticate">Key check (<c>auth</c>).</param>
/// <param name="Admit">What the admission added to the answer (<c>admit</c>).</param>
/// <param name="Record">The usage record's round trip (<c>record</c>).</param>
public readonly record struct EnforcementTiming(TimeSpan Authenticate, TimeSpan Admit, TimeSpan Record)
{
    /// <summary>Appends the entries <c>auth</c>, <c>admit</c> and <c>record</c> (milliseconds) to a Server-Timing line being built.</summary>
    public void AppendTo(ref DefaultInterpolatedStringHandler text)
    {
        RequestTiming.AppendDuration(ref text, "auth", Authenticate.TotalMilliseconds);
        text.AppendLiteral(", ");
        RequestTiming.AppendDuration(ref text, "admit", Admit.TotalMilliseconds);
        text.AppendLiteral(", ");
        RequestTiming.AppendDuration(ref text, "record", Record.TotalMilliseconds);
    }

    /// <summary>The entries alone, as a Server-Timing value.</summary>
    public override string ToString()
    {
        var text = new DefaultInterpolatedStringHandler(0, 0, CultureInfo.InvariantCulture, stackalloc char[128]);
        AppendTo(ref text);
        return text.ToStringAndClear();
    }
}

/// <summary>
/// Set by enforcement on an admitted REST inference: the writer of the answer calls <see cref="RecordAsync"/> before the
/// first byte, so a record that cannot be made durable turns the answer into a 503 it can still write. (A failure inside
/// Kestrel's OnStarting callback could not: Kestrel answers 500 for it, whatever the application writes next.)
/// </summary>
public abstract class UsageRecording
{
    /// <summary>When enforcement received the request (<see cref="TimeProvider.GetTimestamp"/>): where the answer's Server-Timing <c>total</c> starts.</summary>
    public long Arrived { get; init; }

    /// <summary>Whether a record was attempted and could not be stored (set by enforcement).</summary>
    public bool Failed { get; protected set; }

    /// <summary>
    /// Enforcement's phases once the record is stored, for the writer of the answer to add to its own Server-Timing line.
    /// </summary>
    public EnforcementTiming? Timing { get; protected set; }

    /// <summary>Makes the request's usage record durable with <paramref name="status"/>; once per request, later calls do nothing.</summary>
    /// <exception cref="Exception">The record could not be stored: the answer must not go out.</exception>
    public abstract ValueTask RecordAsync(int status);
}

/// <summary>
/// The admission of a request served while it was on its way (<see cref="InferenceApiOptions.OverlapAdmission"/>) refused
/// it: thrown where the answer was about to go out, so the refusal goes out instead.
/// </summary>
public sealed class AdmissionRefusedException(EnforcementRefusal refusal) : Exception(refusal?.Message)
{
    /// <summary>What to answer instead.</summary>
    public EnforcementRefusal Refusal { get; } = refusal ?? throw new ArgumentNullException(nameof(refusal));
}

/// <summary>Why enforcement refused a request, in the terms both transports map from.</summary>
/// <param name="Status">401 (no or unknown key), 403 (revoked, expired, model not allowed), 429 (rate limit, budget), 503 (limiter unavailable).</param>
/// <param name="Message">For the client, naming what is wrong.</param>
/// <param name="RetryAfterMs">For 429 and 503: when to come back.</param>
/// <param name="Challenge">For 401: the <c>WWW-Authenticate</c> challenge.</param>
public sealed record EnforcementRefusal(int Status, string Message, int RetryAfterMs = 0, string? Challenge = null);

/// <summary>
/// Tenant enforcement independent of the transport (REST middleware and the gRPC service both use it): a tenant key is
/// required (401 missing or unknown; 403 revoked, expired, or a model the tenant may not use); an inference takes a
/// rate-limit token and is refused when the budget is exhausted (429 + retry delay) or when the shared limiter cannot be
/// reached (503: fail closed); and every admitted inference gets one usage record with its cost, written to the durable
/// buffer before the answer goes out, so a client never holds an answer whose record could still be lost.
/// </summary>
public sealed partial class InferenceEnforcement(
    TenantDirectory directory,
    UsageLedger ledger,
    TenancyTelemetry telemetry,
    KeyUsageTracker keyUsage,
    KeyGuessingLimiter guessing,
    IOptionsMonitor<KeyGuessingOptions> guessingOptions,
    IOptions<InferenceApiOptions> options,
    TimeProvider time,
    ILogger<InferenceEnforcement> logger)
{
    /// <summary>Realm of the Bearer challenge.</summary>
    public const string Realm = "inference-api";

    // Per key: what this replica's last admission left (tokens, budget used) and when; decides whether serving may start
    // before the next admission returns.
    private readonly ConcurrentDictionary<Guid, AdmissionHint> _hints = new();

    /// <summary>The key a caller presents: <c>Authorization: Bearer &lt;key&gt;</c>, else <c>x-api-key</c>; null when neither.</summary>
    public static string? PresentedKey(string? authorization, string? apiKey)
    {
        if (authorization is not null && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && authorization.Length > 7)
        {
            return authorization[7..].Trim();
        }

        return string.IsNullOrWhiteSpace(apiKey) ? null : apiKey.Trim();
    }

    /// <summary>
    /// Authenticates <paramref name="presented"/> and checks the tenant may use <paramref name="model"/> (null: only the
    /// key). Annotates <paramref name="span"/> with the caller and the GenAI attributes. Failed keys are bounded per
    /// <paramref name="client"/> address and per key prefix (<see cref="KeyGuessingLimiter"/>): past the limit, 429.
    /// </summary>
    public async ValueTask<(TenantContext? Caller, EnforcementRefusal? Refusal)> AuthenticateAsync(string? presented, string? model, IPAddress? client, Activity? span, CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        if (presented is null)
        {
            return (null, new EnforcementRefusal(401, "authorization: an API key is required ('Authorization: Bearer <key>' or 'x-api-key: <key>')",
                Challenge: $"Bearer realm=\"{Realm}\""));
        }

        if (guessing.Check(client, presented) is { } throttled)
        {
            return (null, TooManyFailures(throttled));
        }

        KeyAuthentication authentication;
        try
        {
            authentication = await directory.AuthenticateAsync(presented, cancellationToken);
        }
        catch (Exception ex) when (ex is Npgsql.NpgsqlException or StackExchange.Redis.RedisException or TimeoutException)
        {
            // A key this replica has not cached (or whose entry expired) while Postgres is away: not the client's fault,
            // and nothing to decide on; come back shortly.
            LogDirectoryUnavailable(logger, ex.Message);
            return (null, new EnforcementRefusal(503, "authorization: the key directory is unavailable; retry shortly", 1000));
        }

        telemetry.Phase("authenticate", time.GetElapsedTime(started));
        if (authentication.Status == KeyStatus.Unknown)
        {
            if (await guessing.FailedAsync(client, authentication.Prefix) is { } limited)
            {
                return (null, TooManyFailures(limited));
            }

            return (null, new EnforcementRefusal(401, "authorization: the API key is not valid", Challenge: $"Bearer realm=\"{Realm}\", error=\"invalid_token\""));
        }

        var caller = authentication.Context!;
        TenancyTelemetry.Annotate(span, caller, model ?? string.Empty);
        if (authentication.Status is KeyStatus.Revoked or KeyStatus.Expired)
        {
            var state = authentication.Status == KeyStatus.Revoked ? "revoked" : "expired";
            telemetry.Refused(caller.Tenant, state);
            LogKeyRefused(logger, caller.KeyPrefix, caller.Tenant.Name, state);
            return (caller, new EnforcementRefusal(403, $"authorization: API key '{caller.KeyPrefix}' of tenant '{caller.Tenant.Name}' is {state}"));
        }

        keyUsage.Seen(caller.KeyId);
        if (model is not null && !caller.Tenant.MayUse(model))
        {
            telemetry.Refused(caller.Tenant, "model_not_allowed");
            return (caller, ModelNotAllowed(caller, model));
        }

        return (caller, null);
    }

    private EnforcementRefusal TooManyFailures(GuessingRefusal refusal)
    {
        var limits = guessingOptions.CurrentValue;
        var what = refusal.Limit == "address"
            ? string.Create(CultureInfo.InvariantCulture, $"too many failed API keys from this client address (limit {limits.FailuresPerAddressPerMinute} a minute)")
            : string.Create(CultureInfo.InvariantCulture, $"too many failed attempts at this API key prefix (limit {limits.FailuresPerKeyPrefixPerMinute} a minute)");
        var retryAfterMs = (int)Math.Max(1000, Math.Ceiling(refusal.RetryAfter.TotalMilliseconds));
        return new EnforcementRefusal(429, string.Create(CultureInfo.InvariantCulture, $"authorization: {what}; retry after {Math.Ceiling(retryAfterMs / 1000.0):0} s"), retryAfterMs);
    }

    /// <summary>403 for a model the tenant may not use.</summary>
    public static EnforcementRefusal ModelNotAllowed(TenantContext caller, string model)
    {
        ArgumentNullException.ThrowIfNull(caller);
        return new EnforcementRefusal(403, $"model: tenant '{caller.Tenant.Name}' may not use model '{model}'");
    }

    /// <summary>
    /// Takes a rate-limit token and checks the budget. Null when the inference may run; otherwise a 429 (rate limit or
    /// budget, to be recorded as usage) or a 503 (<see cref="EnforcementRefusal.Status"/>; nothing can be recorded).
    /// </summary>
    public async ValueTask<EnforcementRefusal?> AdmitAsync(TenantContext caller, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var started = time.GetTimestamp();
        Admission admission;
        try
        {
            admission = await ledger.AdmitAsync(caller, caller.Tenant.RateLimit ?? directory.DefaultRateLimit, cancellationToken);
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException or Npgsql.NpgsqlException)
        {
            _hints.TryRemove(caller.KeyId, out _);
            // Without the shared limiter and ledger nothing could be charged: fail closed, tell the client to come back.
            LogEnforcementUnavailable(logger, ex.Message);
            return new EnforcementRefusal(503, "rate limiter and usage ledger are unavailable; retry shortly", 1000);
        }

        telemetry.Phase("admit", time.GetElapsedTime(started));
        _hints[caller.KeyId] = new AdmissionHint(admission.RateLimit.Allowed ? admission.RateLimit.Remaining : 0, admission.Budget?.UsedRatio ?? 0, time.GetTimestamp());
        if (admission.Budget is { } budget)
        {
            telemetry.BudgetUsed(caller.Tenant, budget);
        }

        if (!admission.RateLimit.Allowed)
        {
            telemetry.Refused(caller.Tenant, "rate_limit");
            var limit = caller.Tenant.RateLimit ?? directory.DefaultRateLimit;
            return new EnforcementRefusal(429,
                string.Create(CultureInfo.InvariantCulture, $"rate limit: API key '{caller.KeyPrefix}' is limited to {limit.RequestsPerSecond:0.###} requests/s (burst {limit.Burst}); retry after {admission.RateLimit.RetryAfter.TotalSeconds:0.###} s"),
                (int)Math.Ceiling(admission.RateLimit.RetryAfter.TotalMilliseconds));
        }

        if (admission.Budget is { Exhausted: true } exhausted)
        {
            telemetry.Refused(caller.Tenant, "budget");
            var untilReset = exhausted.ResetsAt - time.GetUtcNow();
            return new EnforcementRefusal(429,
                string.Create(CultureInfo.InvariantCulture,
                    $"budget: tenant '{caller.Tenant.Name}' has spent {exhausted.Spent:0.######} {exhausted.Budget.Currency} of its {exhausted.Budget.Period} budget of {exhausted.Budget.Limit:0.######} {exhausted.Budget.Currency}; it resets at {exhausted.ResetsAt.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}"),
                (int)Math.Min(int.MaxValue, Math.Ceiling(untilReset.TotalMilliseconds)));
        }

        return null;
    }

    /// <summary>
    /// Whether <paramref name="caller"/>'s next inference may be served while its admission is on its way: overlap is on
    /// and this replica's last admission of the key, recent enough, left at least a quarter of the burst (and 2 tokens)
    /// and the budget below 90 %. The admission still decides whether the answer goes out.
    /// </summary>
    public bool MayServeBeforeAdmission(TenantContext caller)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var settings = options.Value;
        if (!settings.OverlapAdmission || !_hints.TryGetValue(caller.KeyId, out var hint) || time.GetElapsedTime(hint.At) > settings.AdmissionHintTtl)
        {
            return false;
        }

        var limit = caller.Tenant.RateLimit ?? directory.DefaultRateLimit;
        return hint.Tokens >= Math.Max(2, limit.Burst / 4.0) && hint.BudgetUsed < 0.9;
    }

    /// <summary>Counts an inference served while its admission was on its way, by the admission's outcome.</summary>
    public void Overlapped(bool admitted) => telemetry.Overlapped(admitted);

    /// <summary>
    /// Writes the usage record of an admitted request and charges its cost. Not the request's token: once the answer
    /// exists its record is written even if the client has left.
    /// </summary>
    /// <param name="caller">Who called.</param>
    /// <param name="model">The model asked for.</param>
    /// <param name="usage">What serving learned.</param>
    /// <param name="status">The answer's status as HTTP states it (gRPC answers are recorded with their HTTP equivalent).</param>
    /// <param name="started">When the request arrived (<see cref="TimeProvider.GetTimestamp"/>).</param>
    /// <param name="span">The request's server span.</param>
    /// <exception cref="Exception">The record could not be made durable: the caller must not get the answer.</exception>
    public async ValueTask RecordAsync(TenantContext caller, string model, InferenceUsageFeature usage, int status, long started, Activity? span)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(usage);
        var recordStarted = time.GetTimestamp();
        try
        {
            var price = status == 200 ? await directory.GetPriceAsync(model, CancellationToken.None) : null;
            var cost = price?.CostOf(usage.InputElements) ?? 0m;
            var elapsed = time.GetElapsedTime(started);
            var now = time.GetUtcNow();
            var record = new UsageRecord(
                Guid.CreateVersion7(now),
                caller.Tenant.Id,
                caller.KeyId,
                model,
                usage.Version,
                status,
                elapsed.TotalMilliseconds,
                usage.BatchSize,
                cost,
                price?.Currency ?? options.Value.DefaultCurrency,
                span?.TraceId.ToHexString(),
                now,
                usage.RequestId,
                usage.InputElements,
                usage.Cached);

            var charge = await ledger.RecordAsync(record, caller.Budget, CancellationToken.None);
            telemetry.Operation(caller.Tenant, model, status, elapsed);
            telemetry.Cost(caller.Tenant, model, cost, record.Currency);
            span?.SetTag("platform.cost", (double)cost);
            span?.SetTag("platform.cost.currency", record.Currency);
            if (charge.Budget is { } budget)
            {
                telemetry.BudgetUsed(caller.Tenant, budget);
            }

            foreach (var crossed in charge.Crossed)
            {
                telemetry.Alert(caller.Tenant, crossed);
                LogBudgetThreshold(logger, caller.Tenant.Name, crossed.Threshold, crossed.Period, crossed.Spent, crossed.Limit, crossed.Currency, crossed.Kind);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogRecordFailed(logger, caller.Tenant.Name, model, ex.Message);
            throw;
        }
        finally
        {
            telemetry.Phase("record", time.GetElapsedTime(recordStarted));
        }
    }

    private sealed record AdmissionHint(long Tokens, double BudgetUsed, long At);

    [LoggerMessage(EventId = 40, Level = LogLevel.Information, Message = "API key {KeyPrefix} of tenant {Tenant} refused: {State}")]
    private static partial void LogKeyRefused(ILogger logger, string keyPrefix, string tenant, string state);

    [LoggerMessage(EventId = 41, Level = LogLevel.Warning,
        Message = "Tenant {Tenant} crossed {Threshold:P0} of its {Period} budget: spent {Spent} of {Limit} {Currency} ({Kind})")]
    private static partial void LogBudgetThreshold(ILogger logger, string tenant, double threshold, string period, decimal spent, decimal limit, string currency, string kind);

    [LoggerMessage(EventId = 42, Level = LogLevel.Error, Message = "Enforcement unavailable, inference refused with 503: {Reason}")]
    private static partial void LogEnforcementUnavailable(ILogger logger, string reason);

    [LoggerMessage(EventId = 46, Level = LogLevel.Error, Message = "Key directory unavailable, request refused with 503: {Reason}")]
    private static partial void LogDirectoryUnavailable(ILogger logger, string reason);

    [LoggerMessage(EventId = 43, Level = LogLevel.Error, Message = "Usage record for tenant {Tenant}, model {Model} could not be stored; answered 503 instead: {Reason}")]
    private static partial void LogRecordFailed(ILogger logger, string tenant, string model, string reason);
}
