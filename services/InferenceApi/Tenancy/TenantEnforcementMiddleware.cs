using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Options;
using Platform.InferenceApi.Serving;
using Platform.Tenancy;
using Platform.Tenancy.Enforcement;

namespace Platform.InferenceApi.Tenancy;

/// <summary>What the inference handler learned about a request, for its usage record.</summary>
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

/// <summary>
/// Enforcement on <c>/v2/models/…</c>: a tenant key (<c>Authorization: Bearer</c> or <c>x-api-key</c>) is required
/// (401 missing or unknown; 403 revoked, expired, or a model the tenant may not use). On <c>…/infer</c> it also takes
/// a rate-limit token (429 + Retry-After), refuses when the budget is exhausted (429 naming the budget and when it
/// resets), and writes the usage record with its cost to the durable buffer just before the response starts, so a
/// client never holds an answer whose record could still be lost. Health and server metadata stay open for probes.
/// </summary>
public sealed partial class TenantEnforcementMiddleware(
    RequestDelegate next,
    TenantDirectory directory,
    UsageLedger ledger,
    TenancyTelemetry telemetry,
    KeyUsageTracker keyUsage,
    IOptions<InferenceApiOptions> options,
    TimeProvider time,
    ILogger<TenantEnforcementMiddleware> logger)
{
    private const string ModelsPrefix = "/v2/models/";

    /// <summary>Runs enforcement for one request.</summary>
    public async Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var path = context.Request.Path.Value ?? string.Empty;
        if (!path.StartsWith(ModelsPrefix, StringComparison.Ordinal))
        {
            await next(context);
            return;
        }

        var started = time.GetTimestamp();
        var model = ModelName(path);
        var presented = PresentedKey(context.Request);
        if (presented is null)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer realm=\"inference-api\"";
            await InferenceHandler.WriteErrorAsync(context, 401, "authorization: an API key is required ('Authorization: Bearer <key>' or 'x-api-key: <key>')");
            return;
        }

        var authentication = await directory.AuthenticateAsync(presented, context.RequestAborted);
        var authenticated = time.GetTimestamp();
        telemetry.Phase("authenticate", time.GetElapsedTime(started, authenticated));
        if (authentication.Status == KeyStatus.Unknown)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer realm=\"inference-api\", error=\"invalid_token\"";
            await InferenceHandler.WriteErrorAsync(context, 401, "authorization: the API key is not valid");
            return;
        }

        var caller = authentication.Context!;
        TenancyTelemetry.Annotate(ServerSpan(context), caller, model);
        if (authentication.Status is KeyStatus.Revoked or KeyStatus.Expired)
        {
            var state = authentication.Status == KeyStatus.Revoked ? "revoked" : "expired";
            telemetry.Refused(caller.Tenant, state);
            LogKeyRefused(logger, caller.KeyPrefix, caller.Tenant.Name, state);
            await InferenceHandler.WriteErrorAsync(context, 403, $"authorization: API key '{caller.KeyPrefix}' of tenant '{caller.Tenant.Name}' is {state}");
            return;
        }

        keyUsage.Seen(caller.KeyId);
        if (!caller.Tenant.MayUse(model))
        {
            telemetry.Refused(caller.Tenant, "model_not_allowed");
            await InferenceHandler.WriteErrorAsync(context, 403, $"model: tenant '{caller.Tenant.Name}' may not use model '{model}'");
            return;
        }

        if (!HttpMethods.IsPost(context.Request.Method) || !path.EndsWith("/infer", StringComparison.Ordinal))
        {
            await next(context);
            return;
        }

        await InferAsync(context, caller, model, started, authenticated);
    }

    private async Task InferAsync(HttpContext context, TenantContext caller, string model, long started, long authenticated)
    {
        var usage = new InferenceUsageFeature();
        context.Features.Set(usage);
        var recorded = false;
        var recordTime = TimeSpan.Zero;
        Exception? recordFailure = null;

        // Called by Kestrel right before the status line goes out, whoever writes the response (handler or us).
        async Task RecordAsync()
        {
            if (recorded)
            {
                return;
            }

            recorded = true;
            var recordStarted = time.GetTimestamp();
            try
            {
                await RecordUsageAsync(context, caller, model, usage, started);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                recordFailure = ex;
                throw;
            }
            finally
            {
                recordTime = time.GetElapsedTime(recordStarted);
                telemetry.Phase("record", recordTime);
            }

            var admit = time.GetElapsedTime(authenticated, context.Features.Get<AdmitTiming>()?.Admitted ?? authenticated);
            // One header line: the handler's serving phases, then enforcement's.
            var enforcement = string.Create(CultureInfo.InvariantCulture,
                $"auth;dur={time.GetElapsedTime(started, authenticated).TotalMilliseconds:0.###}, admit;dur={admit.TotalMilliseconds:0.###}, record;dur={recordTime.TotalMilliseconds:0.###}");
            var serving = context.Response.Headers[InferenceHandler.ServerTimingHeader].ToString();
            context.Response.Headers[InferenceHandler.ServerTimingHeader] = serving.Length == 0 ? enforcement : $"{serving}, {enforcement}";
        }

        context.Response.OnStarting(RecordAsync);

        Admission admission;
        try
        {
            admission = await ledger.AdmitAsync(caller, caller.Tenant.RateLimit ?? directory.DefaultRateLimit, context.RequestAborted);
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException or Npgsql.NpgsqlException)
        {
            // Without the shared limiter and ledger nothing could be charged: fail closed, tell the client to come back.
            LogEnforcementUnavailable(logger, ex.Message);
            recorded = true; // nothing can be recorded either
            await InferenceHandler.WriteErrorAsync(context, 503, "rate limiter and usage ledger are unavailable; retry shortly", 1000);
            return;
        }

        context.Features.Set(new AdmitTiming(time.GetTimestamp()));
        telemetry.Phase("admit", time.GetElapsedTime(authenticated));
        if (admission.Budget is { } budget)
        {
            telemetry.BudgetUsed(caller.Tenant, budget);
        }

        if (!admission.RateLimit.Allowed)
        {
            telemetry.Refused(caller.Tenant, "rate_limit");
            var limit = caller.Tenant.RateLimit ?? directory.DefaultRateLimit;
            await InferenceHandler.WriteErrorAsync(context, 429,
                string.Create(CultureInfo.InvariantCulture, $"rate limit: API key '{caller.KeyPrefix}' is limited to {limit.RequestsPerSecond:0.###} requests/s (burst {limit.Burst}); retry after {admission.RateLimit.RetryAfter.TotalSeconds:0.###} s"),
                (int)Math.Ceiling(admission.RateLimit.RetryAfter.TotalMilliseconds));
            return;
        }

        if (admission.Budget is { Exhausted: true } exhausted)
        {
            telemetry.Refused(caller.Tenant, "budget");
            var untilReset = exhausted.ResetsAt - time.GetUtcNow();
            await InferenceHandler.WriteErrorAsync(context, 429,
                string.Create(CultureInfo.InvariantCulture,
                    $"budget: tenant '{caller.Tenant.Name}' has spent {exhausted.Spent:0.######} {exhausted.Budget.Currency} of its {exhausted.Budget.Period} budget of {exhausted.Budget.Limit:0.######} {exhausted.Budget.Currency}; it resets at {exhausted.ResetsAt.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ}"),
                (int)Math.Min(int.MaxValue, Math.Ceiling(untilReset.TotalMilliseconds)));
            return;
        }

        try
        {
            await next(context);
        }
        catch (Exception) when (recordFailure is not null && !context.Response.HasStarted)
        {
            // The answer was ready but its usage record could not be made durable: the client must not get it.
            LogRecordFailed(logger, caller.Tenant.Name, model, recordFailure.Message);
            context.Response.Clear();
            await InferenceHandler.WriteErrorAsync(context, 503, "the usage record could not be stored; the request was not charged, retry shortly", 1000);
            return;
        }
        catch (Exception) when (!context.Response.HasStarted && !recorded)
        {
            // An unexpected failure still leaves a record of the attempt.
            context.Response.StatusCode = 500;
            await RecordAsync();
            throw;
        }

        if (!context.Response.HasStarted && !recorded)
        {
            // The client went away before any answer: still one record (status 499).
            context.Response.StatusCode = 499;
            await RecordAsync();
        }
    }

    private async Task RecordUsageAsync(HttpContext context, TenantContext caller, string model, InferenceUsageFeature usage, long started)
    {
        var status = context.Response.StatusCode;
        var price = status == 200 ? await directory.GetPriceAsync(model, CancellationToken.None) : null;
        var cost = price?.CostOf(usage.InputElements) ?? 0m;
        var elapsed = time.GetElapsedTime(started);
        var record = new UsageRecord(
            Guid.CreateVersion7(),
            caller.Tenant.Id,
            caller.KeyId,
            model,
            usage.Version,
            status,
            elapsed.TotalMilliseconds,
            usage.BatchSize,
            cost,
            price?.Currency ?? options.Value.DefaultCurrency,
            ServerSpan(context)?.TraceId.ToHexString(),
            time.GetUtcNow(),
            usage.RequestId,
            usage.InputElements,
            usage.Cached);

        // Not the request's token: once the answer exists, its record is written even if the client has left.
        var charge = await ledger.RecordAsync(record, caller.Budget, CancellationToken.None);
        telemetry.Operation(caller.Tenant, model, status, elapsed);
        telemetry.Cost(caller.Tenant, model, cost, record.Currency);
        ServerSpan(context)?.SetTag("platform.cost", (double)cost);
        ServerSpan(context)?.SetTag("platform.cost.currency", record.Currency);
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

    // The hosting (server) span, whatever child activity is current when Kestrel runs the OnStarting callback.
    private static Activity? ServerSpan(HttpContext context) =>
        context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpActivityFeature>()?.Activity ?? Activity.Current;

    private static string ModelName(string path)
    {
        var rest = path.AsSpan(ModelsPrefix.Length);
        var slash = rest.IndexOf('/');
        return Uri.UnescapeDataString((slash < 0 ? rest : rest[..slash]).ToString());
    }

    private static string? PresentedKey(HttpRequest request)
    {
        var authorization = request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && authorization.Length > 7)
        {
            return authorization[7..].Trim();
        }

        var header = request.Headers["x-api-key"].ToString();
        return string.IsNullOrWhiteSpace(header) ? null : header.Trim();
    }

    private sealed record AdmitTiming(long Admitted);

    [LoggerMessage(EventId = 40, Level = LogLevel.Information, Message = "API key {KeyPrefix} of tenant {Tenant} refused: {State}")]
    private static partial void LogKeyRefused(ILogger logger, string keyPrefix, string tenant, string state);

    [LoggerMessage(EventId = 41, Level = LogLevel.Warning,
        Message = "Tenant {Tenant} crossed {Threshold:P0} of its {Period} budget: spent {Spent} of {Limit} {Currency} ({Kind})")]
    private static partial void LogBudgetThreshold(ILogger logger, string tenant, double threshold, string period, decimal spent, decimal limit, string currency, string kind);

    [LoggerMessage(EventId = 42, Level = LogLevel.Error, Message = "Enforcement unavailable, inference refused with 503: {Reason}")]
    private static partial void LogEnforcementUnavailable(ILogger logger, string reason);

    [LoggerMessage(EventId = 43, Level = LogLevel.Error, Message = "Usage record for tenant {Tenant}, model {Model} could not be stored; answered 503 instead: {Reason}")]
    private static partial void LogRecordFailed(ILogger logger, string tenant, string model, string reason);
}
