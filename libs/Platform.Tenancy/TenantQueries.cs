using Npgsql;
using Platform.Tenancy.Enforcement;

namespace Platform.Tenancy;

/// <summary>Row mapping and the reads the request path needs; AdminApi's store reuses the mapping.</summary>
public static class TenantQueries
{
    /// <summary>Columns <see cref="ReadTenant"/> expects, in order, from table alias <c>t</c>.</summary>
    public const string TenantColumns =
        "t.id, t.name, t.team, t.project, t.customer, t.cost_center, t.environment, t.allowed_models, t.rate_limit_per_second, t.rate_limit_burst, t.created_at, t.updated_at";

    /// <summary>Columns <see cref="ReadBudget"/> expects, in order, from table alias <c>b</c>.</summary>
    public const string BudgetColumns = "b.tenant_id, b.period, b.limit_amount, b.currency, b.soft_thresholds, b.updated_at";

    /// <summary>Maps <see cref="TenantColumns"/> starting at ordinal 0.</summary>
    public static Tenant ReadTenant(NpgsqlDataReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        return new Tenant(
            reader.GetGuid(0),
            reader.GetString(1),
            NullableString(reader, 2),
            NullableString(reader, 3),
            NullableString(reader, 4),
            NullableString(reader, 5),
            NullableString(reader, 6),
            reader.GetFieldValue<string[]>(7),
            reader.IsDBNull(8) || reader.IsDBNull(9) ? null : new RateLimit(reader.GetDouble(8), reader.GetInt32(9)),
            reader.GetFieldValue<DateTimeOffset>(10),
            reader.GetFieldValue<DateTimeOffset>(11));
    }

    /// <summary>Maps <see cref="BudgetColumns"/> starting at <paramref name="offset"/>; null when the budget columns are null (outer join).</summary>
    public static Budget? ReadBudget(NpgsqlDataReader reader, int offset)
    {
        ArgumentNullException.ThrowIfNull(reader);
        return reader.IsDBNull(offset)
            ? null
            : new Budget(
                reader.GetGuid(offset),
                reader.GetString(offset + 1),
                reader.GetDecimal(offset + 2),
                reader.GetString(offset + 3),
                reader.GetFieldValue<double[]>(offset + 4),
                reader.GetFieldValue<DateTimeOffset>(offset + 5));
    }

    /// <summary>Maps a <c>model_prices</c> row (model, per_1k_inferences, per_input_element, currency, updated_at).</summary>
    public static ModelPrice ReadPrice(NpgsqlDataReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        return new ModelPrice(reader.GetString(0), reader.GetDecimal(1), reader.GetDecimal(2), reader.GetString(3), reader.GetFieldValue<DateTimeOffset>(4));
    }

    /// <summary>A tenant with its budget, or null.</summary>
    public static async Task<(Tenant Tenant, Budget? Budget)?> LoadTenantAsync(NpgsqlDataSource db, Guid tenantId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(db);
        await using var command = db.CreateCommand(
            $"SELECT {TenantColumns}, {BudgetColumns} FROM tenants t LEFT JOIN tenant_budgets b ON b.tenant_id = t.id WHERE t.id = $1");
        command.Parameters.AddWithValue(tenantId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? (ReadTenant(reader), ReadBudget(reader, 12)) : null;
    }

    /// <summary>Every model price by model name.</summary>
    public static async Task<IReadOnlyDictionary<string, ModelPrice>> LoadPricesAsync(NpgsqlDataSource db, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(db);
        await using var command = db.CreateCommand("SELECT model, per_1k_inferences, per_input_element, currency, updated_at FROM model_prices");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var prices = new Dictionary<string, ModelPrice>(StringComparer.Ordinal);
        while (await reader.ReadAsync(cancellationToken))
        {
            var price = ReadPrice(reader);
            prices[price.Model] = price;
        }

        return prices;
    }

    internal static async Task<StoredKey?> LoadKeyAsync(NpgsqlDataSource db, string prefix, CancellationToken cancellationToken)
    {
        await using var command = db.CreateCommand("SELECT id, tenant_id, salt, hash, expires_at, revoked_at FROM api_keys WHERE prefix = $1");
        command.Parameters.AddWithValue(prefix);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return new StoredKey(
            reader.GetGuid(0),
            reader.GetGuid(1),
            reader.GetFieldValue<byte[]>(2),
            reader.GetFieldValue<byte[]>(3),
            reader.IsDBNull(4) ? null : reader.GetFieldValue<DateTimeOffset>(4),
            reader.IsDBNull(5) ? null : reader.GetFieldValue<DateTimeOffset>(5));
    }

    private static string? NullableString(NpgsqlDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);
}
