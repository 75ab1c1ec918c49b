using System.Diagnostics;
using Platform.InferenceApi.Serving;
using Platform.Tenancy.Enforcement;

namespace Platform.InferenceApi.Tenancy;

/// <summary>
/// <see cref="InferenceEnforcement"/> on the REST routes under <c>/v2/models/…</c>: every route needs a tenant key
/// allowed the model (<c>/v2/models/stats</c> only a key: it lists the models the tenant may use); <c>…/infer</c> is
/// also admitted (rate limit, budget) and gets its usage record just before the response starts, whoever writes it.
/// Health, server metadata and the repository routes (admin key, checked by AdminApi) stay outside.
/// </summary>
public sealed class TenantEnforcementMiddleware(RequestDelegate next, InferenceEnforcement enforcement, TimeProvider time)
{
    private const string ModelsPrefix = "/v2/models/";

    /// <summary>Path of Triton's statistics of every model.</summary>
    public const string AllStatisticsPath = "/v2/models/stats";

    /// <summary>Runs enforcement for one request.</summary>
    public Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var path = context.Request.Path.Value ?? string.Empty;
        if (!path.StartsWith(ModelsPrefix, StringComparison.Ordinal))
        {
            return next(context);
        }

        var started = time.GetTimestamp();
        var allModels = path.Equals(AllStatisticsPath, StringComparison.Ordinal) || path.Equals(AllStatisticsPath + "/", StringComparison.Ordinal);
        var model = allModels ? null : ModelName(path);
        var presented = InferenceEnforcement.PresentedKey(context.Request.Headers.Authorization.ToString(), context.Request.Headers["x-api-key"].ToString());
        var authentication = enforcement.AuthenticateAsync(presented, model, context.Connection.RemoteIpAddress, ServerSpan(context), context.RequestAborted);
        // A cached key authenticates at once: the request then goes on without an async frame (and its allocation) of its own.
        return authentication.IsCompletedSuccessfully
            ? AfterAuthentication(context, authentication.Result, path, model, started)
            : AfterAuthenticationAsync(context, authentication, path, model, started);
    }

    private async Task AfterAuthenticationAsync(
        HttpContext context, ValueTask<(TenantContext? Caller, EnforcementRefusal? Refusal)> authentication, string path, string? model, long started) =>
        await AfterAuthentication(context, await authentication, path, model, started);

    private Task AfterAuthentication(HttpContext context, (TenantContext? Caller, EnforcementRefusal? Refusal) authentication, string path, string? model, long started)
    {
        var authenticated = time.GetTimestamp();
        if (authentication.Refusal is { } refusal)
        {
            return RefuseAsync(context, refusal);
        }

        var caller = authentication.Caller!;
        context.Features.Set(caller);
        if (model is null || !HttpMethods.IsPost(context.Request.Method) || !path.EndsWith("/infer", StringComparison.Ordinal))
        {
            return next(context);
        }

        return InferAsync(context, caller, model, started, authenticated);
    }

    private async Task InferAsync(HttpContext context, TenantContext caller, string model, long started, long authenticated)
    {
        var usage = new InferenceUsageFeature();
        context.Features.Set(usage);
        var recording = new RestUsageRecording(enforcement, time, context, caller, model, usage, authenticated) { Arrived = started };
        context.Features.Set<UsageRecording>(recording);
        context.Response.OnStarting(static state =>
        {
            var recording = (RestUsageRecording)state;
            return recording.RecordAsync(recording.Context.Response.StatusCode, onStarting: true).AsTask();
        }, recording);

        var admission = enforcement.AdmitAsync(caller, context.RequestAborted);
        if (!admission.IsCompleted && enforcement.MayServeBeforeAdmission(caller))
        {
            recording.PendingAdmission = admission;
        }
        else
        {
            var refusal = await admission;
            recording.AdmitWait = time.GetElapsedTime(authenticated);
            if (refusal is not null)
            {
                // A refused inference is recorded (429); without the ledger (503) nothing can be.
                recording.Recorded = refusal.Status == 503;
                await RefuseAsync(context, refusal);
                return;
            }
        }

        try
        {
            await next(context);
            if (!context.Response.HasStarted && !recording.Recorded)
            {
                // The client went away before any answer: still one record (status 499).
                context.Response.StatusCode = 499;
                await recording.RecordAsync(499, onStarting: false);
            }
        }
        catch (AdmissionRefusedException refused) when (!context.Response.HasStarted)
        {
            context.Response.Clear();
            await RefuseAsync(context, refused.Refusal);
        }
        catch (Exception) when (recording.Failed && !context.Response.HasStarted)
        {
            // The answer was ready but its usage record could not be made durable: the client must not get it.
            context.Response.Clear();
            await InferenceHandler.WriteErrorAsync(context, 503, "the usage record could not be stored; the request was not charged, retry shortly", 1000);
        }
        catch (Exception) when (!context.Response.HasStarted && !recording.Recorded)
        {
            // An unexpected failure still leaves a record of the attempt (or, refused after all, the refusal).
            context.Response.StatusCode = 500;
            try
            {
                await recording.RecordAsync(500, onStarting: false);
            }
            catch (AdmissionRefusedException refused)
            {
                context.Response.Clear();
                await RefuseAsync(context, refused.Refusal);
                return;
            }

            throw;
        }
    }

    /// <summary>
    /// One REST inference's usage record and what it needs: recorded by the handler before it writes an answer (it puts
    /// enforcement's timing into its own Server-Timing line), else by Kestrel right before the status line goes out for any
    /// other writer. One object per request holds what a closure and its delegates held.
    /// </summary>
    private sealed class RestUsageRecording(
        InferenceEnforcement enforcement, TimeProvider time, HttpContext context, TenantContext caller, string model, InferenceUsageFeature usage, long authenticated)
        : UsageRecording
    {
        public HttpContext Context => context;

        public bool Recorded { get; set; }

        public TimeSpan AdmitWait { get; set; }

        /// <summary>Set while serving runs ahead of its admission: whoever writes the answer first waits for it.</summary>
        public ValueTask<EnforcementRefusal?>? PendingAdmission { get; set; }

        public override ValueTask RecordAsync(int status) => RecordAsync(status, onStarting: false);

        public async ValueTask RecordAsync(int status, bool onStarting)
        {
            if (Recorded)
            {
                return;
            }

            if (PendingAdmission is { } pending)
            {
                PendingAdmission = null;
                var waitStarted = time.GetTimestamp();
                EnforcementRefusal? late;
                try
                {
                    late = await pending;
                }
                catch (OperationCanceledException)
                {
                    // The client left while its admission was on its way: the attempt is recorded as what it got.
                    late = null;
                }

                // What the admission added to the answer: only the wait after serving was done.
                AdmitWait = time.GetElapsedTime(waitStarted);
                enforcement.Overlapped(late is null);
                if (late is not null)
                {
                    // What was served is discarded; the refusal goes out instead and is recorded like any refusal (a 503
                    // means the ledger is away: nothing can be recorded).
                    Recorded = late.Status == 503;
                    usage.Version = 0;
                    usage.BatchSize = 0;
                    usage.Cached = false;
                    throw new AdmissionRefusedException(late);
                }
            }

            Recorded = true;
            var recordStarted = time.GetTimestamp();
            try
            {
                await enforcement.RecordAsync(caller, model, usage, status, Arrived, ServerSpan(context));
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Failed = true;
                throw;
            }

            var timing = new EnforcementTiming(time.GetElapsedTime(Arrived, authenticated), AdmitWait, time.GetElapsedTime(recordStarted));
            if (!onStarting)
            {
                Timing = timing;
                return;
            }

            // One header line: whatever the writer put there, then enforcement's phases.
            var serving = context.Response.Headers[InferenceHandler.ServerTimingHeader].ToString();
            context.Response.Headers[InferenceHandler.ServerTimingHeader] = serving.Length == 0 ? timing.ToString() : $"{serving}, {timing}";
        }
    }

    private static Task<int> RefuseAsync(HttpContext context, EnforcementRefusal refusal)
    {
        if (refusal.Challenge is { } challenge)
        {
            context.Response.Headers.WWWAuthenticate = challenge;
        }

        return InferenceHandler.WriteErrorAsync(context, refusal.Status, refusal.Message, refusal.RetryAfterMs);
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
}
