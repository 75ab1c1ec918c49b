namespace Platform.Tenancy;

/// <summary>A per-key token bucket: <see cref="Burst"/> requests at once, refilled at <see cref="RequestsPerSecond"/>.</summary>
/// <param name="RequestsPerSecond">Sustained rate (tokens added per second).</param>
/// <param name="Burst">Bucket capacity.</param>
public sealed record RateLimit(double RequestsPerSecond, int Burst)
{
    /// <summary>The first invalid field as "field: reason", or null.</summary>
    public string? Validate(string field) =>
        !(RequestsPerSecond > 0 && RequestsPerSecond <= 1_000_000) ? $"{field}.requestsPerSecond: must be greater than 0 and at most 1000000"
        : Burst is < 1 or > 1_000_000 ? $"{field}.burst: must be between 1 and 1000000"
        : null;
}

/// <summary>A tenant: who calls, how it is attributed in reports and telemetry, and what it may use.</summary>
/// <param name="Id">Tenant id.</param>
/// <param name="Name">Unique name.</param>
/// <param name="Team">Owning team (metric attribute).</param>
/// <param name="Project">Project (metric attribute).</param>
/// <param name="Customer">End customer (span attribute only: unbounded cardinality).</param>
/// <param name="CostCenter">Cost center for chargeback reports.</param>
/// <param name="Environment">Environment, e.g. "prod" (metric attribute).</param>
/// <param name="AllowedModels">Model names this tenant may call; <c>"*"</c> allows every model. Empty allows none.</param>
/// <param name="RateLimit">Per-key rate limit; null uses the platform default.</param>
/// <param name="CreatedAt">Creation time.</param>
/// <param name="UpdatedAt">Last change.</param>
public sealed record Tenant(
    Guid Id,
    string Name,
    string? Team,
    string? Project,
    string? Customer,
    string? CostCenter,
    string? Environment,
    IReadOnlyList<string> AllowedModels,
    RateLimit? RateLimit,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt)
{
    /// <summary>Wildcard entry of <see cref="AllowedModels"/>.</summary>
    public const string AllModels = "*";

    /// <summary>Whether this tenant may call <paramref name="model"/>.</summary>
    public bool MayUse(string model) => AllowedModels.Any(m => m == AllModels || string.Equals(m, model, StringComparison.Ordinal));
}

/// <summary>A stored API key without its secret.</summary>
/// <param name="Id">Key id.</param>
/// <param name="TenantId">Owner.</param>
/// <param name="Prefix">Public prefix (12 hex chars), shown in listings and logs.</param>
/// <param name="Name">Free-form label.</param>
/// <param name="CreatedAt">Creation time.</param>
/// <param name="ExpiresAt">Expiry, if any.</param>
/// <param name="RevokedAt">Revocation time, if revoked.</param>
/// <param name="LastUsedAt">Last successful authentication, if recorded.</param>
public sealed record ApiKeyInfo(
    Guid Id,
    Guid TenantId,
    string Prefix,
    string Name,
    DateTimeOffset CreatedAt,
    DateTimeOffset? ExpiresAt,
    DateTimeOffset? RevokedAt,
    DateTimeOffset? LastUsedAt)
{
    /// <summary>"active", "revoked" or "expired" at <paramref name="now"/>.</summary>
    public string StateAt(DateTimeOffset now) =>
        RevokedAt is not null ? "revoked" : ExpiresAt is { } expires && expires <= now ? "expired" : "active";
}

/// <summary>Price of a model: <c>cost = Per1kInferences / 1000 + PerInputElement × input elements</c> per inference.</summary>
/// <param name="Model">Model name (all versions).</param>
/// <param name="Per1kInferences">Price per 1,000 inferences.</param>
/// <param name="PerInputElement">Price per input tensor element.</param>
/// <param name="Currency">ISO 4217 code, upper case.</param>
/// <param name="UpdatedAt">Last change.</param>
public sealed record ModelPrice(string Model, decimal Per1kInferences, decimal PerInputElement, string Currency, DateTimeOffset UpdatedAt)
{
    /// <summary>Cost of one inference with <paramref name="inputElements"/> input elements.</summary>
    public decimal CostOf(long inputElements) => (Per1kInferences / 1000m) + (PerInputElement * inputElements);
}

/// <summary>Budget periods.</summary>
public static class BudgetPeriods
{
    /// <summary>A UTC calendar day.</summary>
    public const string Daily = "daily";

    /// <summary>A UTC calendar month.</summary>
    public const string Monthly = "monthly";

    /// <summary>Whether <paramref name="period"/> is a known period.</summary>
    public static bool IsValid(string? period) => period is Daily or Monthly;

    /// <summary>Start (inclusive) and end (exclusive, = when the budget resets) of the period containing <paramref name="now"/>.</summary>
    public static (DateTimeOffset Start, DateTimeOffset End) Bounds(string period, DateTimeOffset now)
    {
        var utc = now.ToUniversalTime();
        return period switch
        {
            Daily => (new DateTimeOffset(utc.Year, utc.Month, utc.Day, 0, 0, 0, TimeSpan.Zero),
                new DateTimeOffset(utc.Year, utc.Month, utc.Day, 0, 0, 0, TimeSpan.Zero).AddDays(1)),
            Monthly => (new DateTimeOffset(utc.Year, utc.Month, 1, 0, 0, 0, TimeSpan.Zero),
                new DateTimeOffset(utc.Year, utc.Month, 1, 0, 0, 0, TimeSpan.Zero).AddMonths(1)),
            _ => throw new ArgumentOutOfRangeException(nameof(period), period, "Unknown budget period."),
        };
    }
}

/// <summary>A tenant's spending limit per period.</summary>
/// <param name="TenantId">Tenant.</param>
/// <param name="Period"><see cref="BudgetPeriods.Daily"/> or <see cref="BudgetPeriods.Monthly"/>.</param>
/// <param name="Limit">Hard limit: once spending reaches it, inference is refused until the period ends.</param>
/// <param name="Currency">ISO 4217 code; only costs in this currency count.</param>
/// <param name="SoftThresholds">Fractions of the limit (0–1, ascending) that raise an alert when crossed.</param>
/// <param name="UpdatedAt">Last change.</param>
public sealed record Budget(Guid TenantId, string Period, decimal Limit, string Currency, IReadOnlyList<double> SoftThresholds, DateTimeOffset UpdatedAt);

/// <summary>Kinds of <see cref="BudgetEvent"/>.</summary>
public static class BudgetEventKinds
{
    /// <summary>A soft threshold was crossed.</summary>
    public const string Soft = "soft";

    /// <summary>The limit was reached: further requests are refused until the period resets.</summary>
    public const string Exhausted = "exhausted";
}

/// <summary>A budget threshold crossing.</summary>
/// <param name="Id">Event id (idempotent writes).</param>
/// <param name="TenantId">Tenant.</param>
/// <param name="Kind"><see cref="BudgetEventKinds"/>.</param>
/// <param name="Threshold">Fraction of the limit crossed (1 for exhausted).</param>
/// <param name="Period">Budget period.</param>
/// <param name="PeriodStart">Start of the period in which it happened.</param>
/// <param name="Spent">Spending right after the crossing charge.</param>
/// <param name="Limit">The limit at the time.</param>
/// <param name="Currency">Currency.</param>
/// <param name="OccurredAt">When.</param>
public sealed record BudgetEvent(
    Guid Id,
    Guid TenantId,
    string Kind,
    double Threshold,
    string Period,
    DateTimeOffset PeriodStart,
    decimal Spent,
    decimal Limit,
    string Currency,
    DateTimeOffset OccurredAt);

/// <summary>Redis names shared by the services that write and read tenancy state.</summary>
public static class TenancyChannels
{
    /// <summary>
    /// Pub/sub channel AdminApi publishes a tenant id on after any change to that tenant, its keys or budget (message
    /// <c>"*"</c> after a price change), so InferenceApi replicas drop cached entries at once instead of at expiry.
    /// </summary>
    public const string Changes = "platform:tenancy:changes";

    /// <summary>Redis list of <see cref="BudgetEvent"/> JSON waiting to be written to <c>budget_events</c>.</summary>
    public const string PendingBudgetEvents = "budget-events:pending";

    /// <summary>Redis key of a tenant's spending counter for the period starting at <paramref name="periodStart"/>.</summary>
    public static string SpendKey(Guid tenantId, DateTimeOffset periodStart) =>
        $"budget:{tenantId:N}:{periodStart.UtcDateTime:yyyyMMdd}";
}
