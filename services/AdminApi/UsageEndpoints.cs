using System.Globalization;
using Platform.ModelRegistry;
using Platform.Tenancy.Admin;

namespace Platform.AdminApi;

/// <summary>
/// <c>GET /api/usage</c>: counts and costs from the durable usage records, aggregated by Postgres. Open to the admin key
/// (every tenant) and to tenant keys (their own tenant only).
/// </summary>
internal static class UsageEndpoints
{
    /// <summary>Window reported when <c>from</c> is not given.</summary>
    public static readonly TimeSpan DefaultWindow = TimeSpan.FromDays(30);

    public static void MapUsageEndpoints(this IEndpointRouteBuilder endpoints) =>
        endpoints.MapGet("/api/usage", GetUsageAsync).AddEndpointFilter<AdminOrTenantKeyFilter>();

    private static async Task<IResult> GetUsageAsync(HttpContext context, UsageReports reports, TimeProvider time, CancellationToken ct)
    {
        var query = context.Request.Query;
        var caller = ApiCaller.Of(context);

        Guid? tenantId = null;
        if (Single(query, "tenantId") is { } tenantText)
        {
            if (!Guid.TryParse(tenantText, out var parsed))
            {
                return TenancyApi.BadRequest($"tenantId: '{tenantText}' is not a tenant id (a UUID)");
            }

            if (caller.Forbids(parsed) is { } forbidden)
            {
                return forbidden;
            }

            tenantId = parsed;
        }

        // A tenant key only ever sees its own tenant.
        tenantId ??= caller.Tenant?.Id;

        var model = Single(query, "model");
        if (model is not null && ModelNames.Validate(model) is { } problem)
        {
            return TenancyApi.BadRequest($"model: '{model}' {problem}");
        }

        var now = time.GetUtcNow();
        if (ParseBound(query, "from", endOfDay: false, out var from) is { } badFrom)
        {
            return badFrom;
        }

        if (ParseBound(query, "to", endOfDay: true, out var to) is { } badTo)
        {
            return badTo;
        }

        to ??= now;
        from ??= to.Value - DefaultWindow;
        if (from >= to)
        {
            return TenancyApi.BadRequest($"from: {from:O} is not before to ({to:O})");
        }

        var grouping = UsageGrouping.None;
        var groupBy = Single(query, "groupBy");
        if (string.IsNullOrWhiteSpace(groupBy))
        {
            grouping = UsageGrouping.All;
        }
        else
        {
            foreach (var part in groupBy.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                grouping |= part.ToLowerInvariant() switch
                {
                    "tenant" => UsageGrouping.Tenant,
                    "model" => UsageGrouping.Model,
                    "day" => UsageGrouping.Day,
                    _ => (UsageGrouping)(-1),
                };
                if (grouping < 0)
                {
                    return TenancyApi.BadRequest($"groupBy: '{part}' is not one of tenant, model, day");
                }
            }
        }

        return Results.Ok(await reports.QueryAsync(new UsageQuery(from.Value, to.Value, tenantId, model, grouping), ct));
    }

    private static string? Single(IQueryCollection query, string name)
    {
        var values = query[name];
        return values.Count == 0 || string.IsNullOrWhiteSpace(values[^1]) ? null : values[^1]!.Trim();
    }

    /// <summary>
    /// A date (<c>2025-01-31</c>, UTC) or a timestamp (<c>2025-01-31T12:00:00Z</c>; UTC when it has no offset). A date
    /// used as <c>to</c> covers that whole day, so <c>from=2025-01-01&amp;to=2025-01-31</c> is all of January.
    /// </summary>
    private static IResult? ParseBound(IQueryCollection query, string name, bool endOfDay, out DateTimeOffset? bound)
    {
        bound = null;
        if (Single(query, name) is not { } text)
        {
            return null;
        }

        if (DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date))
        {
            var start = new DateTimeOffset(date.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
            bound = endOfDay ? start.AddDays(1) : start;
            return null;
        }

        // An unencoded '+' of an offset arrives as a space.
        var iso = text.Replace(' ', '+');
        if (iso.Contains('T', StringComparison.OrdinalIgnoreCase)
            && DateTimeOffset.TryParse(iso, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var timestamp))
        {
            bound = timestamp.ToUniversalTime();
            return null;
        }

        return TenancyApi.BadRequest($"{name}: '{text}' is not an ISO 8601 date (2025-01-31) or timestamp (2025-01-31T12:00:00Z)");
    }
}
