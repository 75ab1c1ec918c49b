using System.Text.RegularExpressions;
using Platform.Tenancy;
using Platform.Tenancy.Admin;
using Platform.Tenancy.Enforcement;

namespace Platform.AdminApi;

/// <summary>
/// <c>/api/tenants/{id}/budget</c>: PUT and DELETE need the admin key; GET is open to the admin key and to the tenant's own
/// keys, so a team can watch its consumption.
/// </summary>
internal static partial class BudgetEndpoints
{
    /// <summary>Largest budget limit (the column is numeric(20, 9)).</summary>
    public const decimal MaxLimit = 10_000_000_000m;

    /// <summary>Most soft thresholds per budget.</summary>
    public const int MaxSoftThresholds = 5;

    private static readonly string[] BudgetFields = ["period", "limit", "currency", "softThresholds"];
    private static readonly double[] DefaultSoftThresholds = [0.8, 0.95];

    public static void MapBudgetEndpoints(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/api/tenants/{id}/budget", GetBudgetAsync).AddEndpointFilter<AdminOrTenantKeyFilter>();
        endpoints.MapPut("/api/tenants/{id}/budget", SetBudgetAsync).AddEndpointFilter<AdminKeyFilter>();
        endpoints.MapDelete("/api/tenants/{id}/budget", async (string id, TenantStore store, TenancyChangePublisher changes, ILoggerFactory loggers, CancellationToken ct) =>
        {
            if (TenancyApi.ParseTenantId(id, out var tenantId) is { } invalid)
            {
                return invalid;
            }

            if (!await store.DeleteBudgetAsync(tenantId, ct))
            {
                return TenancyApi.UnknownTenant(id);
            }

            await changes.TenantChangedAsync(tenantId, ct);
            LogBudgetDeleted(loggers.CreateLogger(TenantEndpoints.LogCategory), tenantId);
            return Results.NoContent();
        }).AddEndpointFilter<AdminKeyFilter>();
    }

    /// <summary>Whether <paramref name="currency"/> looks like an ISO 4217 code (three upper-case letters).</summary>
    public static bool IsCurrency(string? currency) => currency is not null && CurrencyPattern().IsMatch(currency);

    private static async Task<IResult> GetBudgetAsync(string id, HttpContext context, TenantStore store, UsageLedger ledger, ILoggerFactory loggers,
        CancellationToken ct)
    {
        if (TenancyApi.ParseTenantId(id, out var tenantId) is { } invalid)
        {
            return invalid;
        }

        // Before any lookup, so a tenant key learns nothing about other tenants (not even whether they exist).
        if (ApiCaller.Of(context).Forbids(tenantId) is { } forbidden)
        {
            return forbidden;
        }

        if (await store.GetTenantAsync(tenantId, ct) is not { } found)
        {
            return TenancyApi.UnknownTenant(id);
        }

        return found.Budget is { } budget
            ? await StatusAsync(budget, store, ledger, context, loggers, ct)
            : Results.NotFound(new ApiError($"budget: tenant '{found.Tenant.Name}' has no budget"));
    }

    private static async Task<IResult> SetBudgetAsync(string id, HttpContext context, TenantStore store, UsageLedger ledger, TenancyChangePublisher changes,
        ILoggerFactory loggers, CancellationToken ct)
    {
        if (TenancyApi.ParseTenantId(id, out var tenantId) is { } invalid)
        {
            return invalid;
        }

        var (body, error) = await JsonBody.ReadAsync(context.Request, emptyAllowed: false, BudgetFields, ct);
        if (body is null)
        {
            return TenancyApi.BadRequest(error!);
        }

        var period = body.RequiredText("period", 16);
        if (body.Error is null && !BudgetPeriods.IsValid(period))
        {
            body.Fail($"period: '{period}' is not '{BudgetPeriods.Daily}' or '{BudgetPeriods.Monthly}'");
        }

        if (body.Error is null && (!body.Has("limit") || body.IsNull("limit")))
        {
            body.Fail("limit: is required");
        }

        var limit = body.Decimal("limit") ?? 0m;
        if (body.Error is null && !(limit > 0 && limit <= MaxLimit))
        {
            body.Fail($"limit: must be greater than 0 and at most {MaxLimit}");
        }
        else if (body.Error is null && decimal.Round(limit, 9) != limit)
        {
            body.Fail("limit: at most 9 decimal places");
        }

        var currency = body.RequiredText("currency", 16);
        if (body.Error is null && !IsCurrency(currency))
        {
            body.Fail($"currency: '{currency}' is not an ISO 4217 code (three upper-case letters, e.g. USD)");
        }

        var thresholds = body.Numbers("softThresholds") ?? DefaultSoftThresholds;
        if (body.Error is null && ThresholdProblem(thresholds) is { } problem)
        {
            body.Fail(problem);
        }

        if (body.Error is not null)
        {
            return TenancyApi.BadRequest(body.Error);
        }

        var budget = await store.SetBudgetAsync(tenantId, period, limit, currency, thresholds, ct);
        if (budget is null)
        {
            return TenancyApi.UnknownTenant(id);
        }

        await changes.TenantChangedAsync(tenantId, ct);
        LogBudgetSet(loggers.CreateLogger(TenantEndpoints.LogCategory), tenantId, budget.Period, budget.Limit, budget.Currency);
        return await StatusAsync(budget, store, ledger, context, loggers, ct);
    }

    private static string? ThresholdProblem(IReadOnlyList<double> thresholds)
    {
        if (thresholds.Count > MaxSoftThresholds)
        {
            return $"softThresholds: at most {MaxSoftThresholds} thresholds";
        }

        for (var i = 0; i < thresholds.Count; i++)
        {
            if (!(thresholds[i] is > 0 and < 1))
            {
                return $"softThresholds[{i}]: {thresholds[i]} is not between 0 and 1 (exclusive; a fraction of the limit)";
            }

            if (i > 0 && thresholds[i] <= thresholds[i - 1])
            {
                return $"softThresholds[{i}]: thresholds must be in ascending order without repeats";
            }
        }

        return null;
    }

    private static async Task<IResult> StatusAsync(Budget budget, TenantStore store, UsageLedger ledger, HttpContext context, ILoggerFactory loggers,
        CancellationToken ct)
    {
        BudgetState state;
        try
        {
            state = await ledger.GetStateAsync(budget, ct);
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
        {
            // The period's spend lives in Redis (it is what InferenceApi charges against); without it there is no honest
            // figure to show, and a partial one from Postgres would understate it by whatever is still buffered.
            LogSpendUnavailable(loggers.CreateLogger(TenantEndpoints.LogCategory), budget.TenantId, ex.Message);
            context.Response.Headers.RetryAfter = "1";
            return Results.Json(new ApiError("budget: the period's consumption is unavailable (Redis unreachable); retry shortly"),
                statusCode: StatusCodes.Status503ServiceUnavailable);
        }

        var events = await store.ListBudgetEventsAsync(budget.TenantId, budget.Period, state.PeriodStart, ct);
        return Results.Ok(BudgetStatus.Of(state, events));
    }

    [GeneratedRegex("^[A-Z]{3}$", RegexOptions.CultureInvariant)]
    private static partial Regex CurrencyPattern();

    [LoggerMessage(EventId = 32, Level = LogLevel.Warning, Message = "Budget consumption of tenant {TenantId} unavailable, answered 503: {Reason}")]
    private static partial void LogSpendUnavailable(ILogger logger, Guid tenantId, string reason);

    [LoggerMessage(EventId = 30, Level = LogLevel.Information, Message = "Set the budget of tenant {TenantId}: {Limit} {Currency} {Period}")]
    private static partial void LogBudgetSet(ILogger logger, Guid tenantId, string period, decimal limit, string currency);

    [LoggerMessage(EventId = 31, Level = LogLevel.Information, Message = "Removed the budget of tenant {TenantId}")]
    private static partial void LogBudgetDeleted(ILogger logger, Guid tenantId);
}
