using Npgsql;
using NpgsqlTypes;

namespace Platform.Tenancy.Admin;

/// <summary>Dimensions a usage report can be grouped by.</summary>
[Flags]
public enum UsageGrouping
{
    /// <summary>One group per currency.</summary>
    None = 0,

    /// <summary>By tenant.</summary>
    Tenant = 1,

    /// <summary>By model name.</summary>
    Model = 2,

    /// <summary>By UTC day.</summary>
    Day = 4,

    /// <summary>Tenant, model and day.</summary>
    All = Tenant | Model | Day,
}

/// <summary>What to report.</summary>
/// <param name="From">Inclusive start.</param>
/// <param name="To">Exclusive end.</param>
/// <param name="TenantId">Only this tenant, when set.</param>
/// <param name="Model">Only this model, when set.</param>
/// <param name="GroupBy">Grouping dimensions; groups are always split by currency too (costs in different currencies do not add up).</param>
public sealed record UsageQuery(DateTimeOffset From, DateTimeOffset To, Guid? TenantId, string? Model, UsageGrouping GroupBy);

/// <summary>Usage of one group. Dimensions not grouped by are null.</summary>
/// <param name="TenantId">Tenant.</param>
/// <param name="TenantName">Tenant name (null for a deleted tenant; its usage records stay).</param>
/// <param name="Model">Model name.</param>
/// <param name="Day">UTC day.</param>
/// <param name="Requests">Inferences recorded.</param>
/// <param name="Succeeded">Those answered 200.</param>
/// <param name="Failed">The others.</param>
/// <param name="Cost">Sum of their costs.</param>
/// <param name="Currency">Currency of <paramref name="Cost"/>.</param>
/// <param name="InputElements">Sum of their input tensor elements.</param>
public sealed record UsageGroup(
    Guid? TenantId,
    string? TenantName,
    string? Model,
    DateOnly? Day,
    long Requests,
    long Succeeded,
    long Failed,
    decimal Cost,
    string Currency,
    long InputElements);

/// <summary>An amount in one currency.</summary>
/// <param name="Currency">ISO 4217 code.</param>
/// <param name="Amount">Amount.</param>
public sealed record CurrencyAmount(string Currency, decimal Amount);

/// <summary>Totals over every group.</summary>
/// <param name="Requests">Inferences.</param>
/// <param name="Succeeded">Answered 200.</param>
/// <param name="Failed">The others.</param>
/// <param name="InputElements">Input tensor elements.</param>
/// <param name="Costs">Cost per currency.</param>
public sealed record UsageTotal(long Requests, long Succeeded, long Failed, long InputElements, IReadOnlyList<CurrencyAmount> Costs);

/// <summary>A usage report.</summary>
/// <param name="From">Inclusive start.</param>
/// <param name="To">Exclusive end.</param>
/// <param name="Groups">Groups ordered by day, tenant name, model and currency.</param>
/// <param name="Total">Totals.</param>
public sealed record UsageReport(DateTimeOffset From, DateTimeOffset To, IReadOnlyList<UsageGroup> Groups, UsageTotal Total);

/// <summary>Usage and cost reports, aggregated by Postgres from <c>usage_records</c>.</summary>
public sealed class UsageReports(NpgsqlDataSource db)
{
    /// <summary>Counts and costs of the records in the query's window, grouped as asked.</summary>
    public async Task<UsageReport> QueryAsync(UsageQuery query, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(query);
        // Ungrouped dimensions collapse to NULL, so one statement serves every grouping.
        await using var command = db.CreateCommand(
            """
            WITH g AS (
                SELECT CASE WHEN $5 THEN u.tenant_id END AS tenant_id,
                       CASE WHEN $6 THEN u.model END AS model,
                       CASE WHEN $7 THEN (u.occurred_at AT TIME ZONE 'UTC')::date END AS day,
                       u.currency,
                       count(*) AS requests,
                       count(*) FILTER (WHERE u.status = 200) AS succeeded,
                       sum(u.cost) AS cost,
                       sum(u.input_elements) AS input_elements
                FROM usage_records u
                WHERE u.occurred_at >= $1 AND u.occurred_at < $2
                  AND ($3::uuid IS NULL OR u.tenant_id = $3)
                  AND ($4::text IS NULL OR u.model = $4)
                GROUP BY 1, 2, 3, 4
            )
            SELECT g.tenant_id, t.name, g.model, g.day, g.requests, g.succeeded, g.cost, g.currency, g.input_elements
            FROM g LEFT JOIN tenants t ON t.id = g.tenant_id
            ORDER BY g.day NULLS FIRST, t.name NULLS FIRST, g.tenant_id NULLS FIRST, g.model NULLS FIRST, g.currency
            """);
        command.Parameters.AddWithValue(query.From);
        command.Parameters.AddWithValue(query.To);
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)query.TenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)query.Model ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.AddWithValue(query.GroupBy.HasFlag(UsageGrouping.Tenant));
        command.Parameters.AddWithValue(query.GroupBy.HasFlag(UsageGrouping.Model));
        command.Parameters.AddWithValue(query.GroupBy.HasFlag(UsageGrouping.Day));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var groups = new List<UsageGroup>();
        while (await reader.ReadAsync(cancellationToken))
        {
            var requests = reader.GetInt64(4);
            var succeeded = reader.GetInt64(5);
            groups.Add(new UsageGroup(
                reader.IsDBNull(0) ? null : reader.GetGuid(0),
                reader.IsDBNull(1) ? null : reader.GetString(1),
                reader.IsDBNull(2) ? null : reader.GetString(2),
                reader.IsDBNull(3) ? null : reader.GetFieldValue<DateOnly>(3),
                requests,
                succeeded,
                requests - succeeded,
                reader.GetDecimal(6),
                reader.GetString(7),
                (long)reader.GetDecimal(8)));
        }

        // Groups partition the records, so totals are exact sums of the groups.
        var total = new UsageTotal(
            groups.Sum(g => g.Requests),
            groups.Sum(g => g.Succeeded),
            groups.Sum(g => g.Failed),
            groups.Sum(g => g.InputElements),
            [.. groups.GroupBy(g => g.Currency, StringComparer.Ordinal)
                .OrderBy(c => c.Key, StringComparer.Ordinal)
                .Select(c => new CurrencyAmount(c.Key, c.Sum(g => g.Cost)))]);
        return new UsageReport(query.From, query.To, groups, total);
    }
}
