using Platform.Tenancy.Enforcement;

namespace Platform.Tenancy.Admin;

/// <summary>A budget threshold crossing as reported by the budget status.</summary>
/// <param name="Id">Event id.</param>
/// <param name="Kind"><see cref="BudgetEventKinds"/>.</param>
/// <param name="Threshold">Fraction of the limit crossed (1 for exhausted).</param>
/// <param name="Spent">Spending right after the crossing.</param>
/// <param name="Limit">Limit at the time.</param>
/// <param name="Currency">Currency.</param>
/// <param name="OccurredAt">When.</param>
public sealed record BudgetEventView(Guid Id, string Kind, double Threshold, decimal Spent, decimal Limit, string Currency, DateTimeOffset OccurredAt);

/// <summary>A tenant's budget and its consumption in the current period.</summary>
/// <param name="TenantId">Tenant.</param>
/// <param name="Period">daily or monthly.</param>
/// <param name="Limit">Hard limit.</param>
/// <param name="Currency">Currency of the limit (only costs in it count).</param>
/// <param name="SoftThresholds">Alert thresholds as fractions of the limit.</param>
/// <param name="PeriodStart">Start of the current period (UTC).</param>
/// <param name="ResetsAt">End of the current period, when spending starts again from zero.</param>
/// <param name="Spent">Spent this period (the counter InferenceApi charges).</param>
/// <param name="Remaining">max(0, limit − spent).</param>
/// <param name="UsedRatio">spent / limit.</param>
/// <param name="Exhausted">Whether inference is refused until <paramref name="ResetsAt"/>.</param>
/// <param name="Events">This period's threshold crossings, oldest first.</param>
public sealed record BudgetStatus(
    Guid TenantId,
    string Period,
    decimal Limit,
    string Currency,
    IReadOnlyList<double> SoftThresholds,
    DateTimeOffset PeriodStart,
    DateTimeOffset ResetsAt,
    decimal Spent,
    decimal Remaining,
    double UsedRatio,
    bool Exhausted,
    IReadOnlyList<BudgetEventView> Events)
{
    /// <summary>Combines a budget state with the period's events.</summary>
    public static BudgetStatus Of(BudgetState state, IEnumerable<BudgetEvent> events)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(events);
        var budget = state.Budget;
        return new BudgetStatus(
            budget.TenantId,
            budget.Period,
            budget.Limit,
            budget.Currency,
            budget.SoftThresholds,
            state.PeriodStart,
            state.ResetsAt,
            state.Spent,
            Math.Max(0m, budget.Limit - state.Spent),
            state.UsedRatio,
            state.Exhausted,
            [.. events.Select(e => new BudgetEventView(e.Id, e.Kind, e.Threshold, e.Spent, e.Limit, e.Currency, e.OccurredAt))]);
    }
}
