using Npgsql;
using NpgsqlTypes;
using StackExchange.Redis;

namespace Platform.Tenancy.Admin;

/// <summary>What a tenant is made of, as written (validated by the caller).</summary>
/// <param name="Name">Unique name.</param>
/// <param name="Team">Owning team.</param>
/// <param name="Project">Project.</param>
/// <param name="Customer">End customer.</param>
/// <param name="CostCenter">Cost center.</param>
/// <param name="Environment">Environment.</param>
/// <param name="AllowedModels">Model names (or <see cref="Tenant.AllModels"/>) the tenant may call.</param>
/// <param name="RateLimit">Per-key rate limit; null for the platform default.</param>
public sealed record TenantDraft(
    string Name,
    string? Team,
    string? Project,
    string? Customer,
    string? CostCenter,
    string? Environment,
    IReadOnlyList<string> AllowedModels,
    RateLimit? RateLimit)
{
    /// <summary>The draft of an existing tenant (the starting point of a partial update).</summary>
    public static TenantDraft Of(Tenant tenant)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        return new TenantDraft(tenant.Name, tenant.Team, tenant.Project, tenant.Customer, tenant.CostCenter, tenant.Environment, tenant.AllowedModels, tenant.RateLimit);
    }
}

/// <summary>Outcome of a write.</summary>
public enum WriteOutcome
{
    /// <summary>Written.</summary>
    Done,

    /// <summary>The tenant (or the key) does not exist.</summary>
    NotFound,

    /// <summary>Another tenant already has that name.</summary>
    Conflict,
}

/// <summary>A write's outcome and, when <see cref="WriteOutcome.Done"/>, what was written.</summary>
/// <param name="Outcome">Outcome.</param>
/// <param name="Value">The stored value when done.</param>
public sealed record WriteResult<T>(WriteOutcome Outcome, T? Value)
    where T : class;

/// <summary>A key just created: <see cref="Plaintext"/> exists only in this object and in the creator's response.</summary>
/// <param name="Key">The stored key (no secret).</param>
/// <param name="Plaintext">The full key, <c>pk_&lt;prefix&gt;_&lt;secret&gt;</c>.</param>
public sealed record CreatedApiKey(ApiKeyInfo Key, string Plaintext);

/// <summary>
/// Write side of tenancy for AdminApi: tenants, API keys, budgets and model prices in Postgres. Callers validate input
/// and announce changes (<see cref="TenancyChangePublisher"/>); this class only reads and writes rows.
/// </summary>
public sealed class TenantStore(NpgsqlDataSource db, IConnectionMultiplexer redis, TimeProvider time)
{
    private const string KeyColumns = "id, tenant_id, prefix, name, created_at, expires_at, revoked_at, last_used_at";
    private const string PriceColumns = "model, per_1k_inferences, per_input_element, currency, updated_at";

    /// <summary>Creates a tenant; <see cref="WriteOutcome.Conflict"/> when the name is taken.</summary>
    public async Task<WriteResult<Tenant>> CreateTenantAsync(TenantDraft draft, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(draft);
        var now = time.GetUtcNow();
        await using var command = db.CreateCommand(
            "INSERT INTO tenants AS t (id, name, team, project, customer, cost_center, environment, allowed_models, rate_limit_per_second, rate_limit_burst, created_at, updated_at) " +
            $"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING {TenantQueries.TenantColumns}");
        command.Parameters.AddWithValue(Guid.CreateVersion7(now));
        AddDraft(command, draft);
        command.Parameters.AddWithValue(now);
        try
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            return new WriteResult<Tenant>(WriteOutcome.Done, TenantQueries.ReadTenant(reader));
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            return new WriteResult<Tenant>(WriteOutcome.Conflict, null);
        }
    }

    /// <summary>Every tenant, by name.</summary>
    public async Task<IReadOnlyList<Tenant>> ListTenantsAsync(CancellationToken cancellationToken)
    {
        await using var command = db.CreateCommand($"SELECT {TenantQueries.TenantColumns} FROM tenants t ORDER BY t.name");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var tenants = new List<Tenant>();
        while (await reader.ReadAsync(cancellationToken))
        {
            tenants.Add(TenantQueries.ReadTenant(reader));
        }

        return tenants;
    }

    /// <summary>A tenant with its budget, or null (read from Postgres, never from a cache).</summary>
    public Task<(Tenant Tenant, Budget? Budget)?> GetTenantAsync(Guid tenantId, CancellationToken cancellationToken) =>
        TenantQueries.LoadTenantAsync(db, tenantId, cancellationToken);

    /// <summary>
    /// Applies <paramref name="change"/> to the current tenant under a row lock, so concurrent partial updates do not
    /// overwrite each other's fields.
    /// </summary>
    public async Task<WriteResult<Tenant>> UpdateTenantAsync(Guid tenantId, Func<TenantDraft, TenantDraft> change, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(change);
        await using var connection = await db.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        Tenant current;
        await using (var select = new NpgsqlCommand($"SELECT {TenantQueries.TenantColumns} FROM tenants t WHERE t.id = $1 FOR UPDATE", connection, transaction))
        {
            select.Parameters.AddWithValue(tenantId);
            await using var reader = await select.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken))
            {
                return new WriteResult<Tenant>(WriteOutcome.NotFound, null);
            }

            current = TenantQueries.ReadTenant(reader);
        }

        var draft = change(TenantDraft.Of(current));
        await using var update = new NpgsqlCommand(
            "UPDATE tenants t SET name = $2, team = $3, project = $4, customer = $5, cost_center = $6, environment = $7, allowed_models = $8, " +
            $"rate_limit_per_second = $9, rate_limit_burst = $10, updated_at = $11 WHERE t.id = $1 RETURNING {TenantQueries.TenantColumns}", connection, transaction);
        update.Parameters.AddWithValue(tenantId);
        AddDraft(update, draft);
        update.Parameters.AddWithValue(time.GetUtcNow());
        try
        {
            Tenant updated;
            await using (var reader = await update.ExecuteReaderAsync(cancellationToken))
            {
                await reader.ReadAsync(cancellationToken);
                updated = TenantQueries.ReadTenant(reader);
            }

            await transaction.CommitAsync(cancellationToken);
            return new WriteResult<Tenant>(WriteOutcome.Done, updated);
        }
        catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            return new WriteResult<Tenant>(WriteOutcome.Conflict, null);
        }
    }

    /// <summary>Deletes a tenant with its keys and budget (the foreign keys cascade); usage records and budget events stay.</summary>
    /// <returns>False when there was no such tenant.</returns>
    public async Task<bool> DeleteTenantAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = db.CreateCommand("DELETE FROM tenants WHERE id = $1");
        command.Parameters.AddWithValue(tenantId);
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    /// <summary>Creates a key for the tenant; null when the tenant does not exist. Only prefix, salt and hash are stored.</summary>
    public async Task<CreatedApiKey?> CreateKeyAsync(Guid tenantId, string name, DateTimeOffset? expiresAt, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(name);
        // The prefix is 48 random bits and unique in the table: a collision is retried with a fresh key.
        for (var attempt = 0; ; attempt++)
        {
            var key = ApiKeys.Generate();
            await using var command = db.CreateCommand(
                "INSERT INTO api_keys (id, tenant_id, prefix, salt, hash, name, created_at, expires_at) " +
                $"SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE EXISTS (SELECT 1 FROM tenants WHERE id = $2) RETURNING {KeyColumns}");
            var now = time.GetUtcNow();
            command.Parameters.AddWithValue(Guid.CreateVersion7(now));
            command.Parameters.AddWithValue(tenantId);
            command.Parameters.AddWithValue(key.Prefix);
            command.Parameters.AddWithValue(key.Salt);
            command.Parameters.AddWithValue(key.Hash);
            command.Parameters.AddWithValue(name);
            command.Parameters.AddWithValue(now);
            command.Parameters.Add(new NpgsqlParameter { Value = (object?)expiresAt ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
            try
            {
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                return await reader.ReadAsync(cancellationToken) ? new CreatedApiKey(ReadKey(reader), key.Plaintext) : null;
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.UniqueViolation && attempt < 3)
            {
                // another key has this prefix: draw again
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.ForeignKeyViolation)
            {
                return null; // the tenant was deleted between the check and the insert
            }
        }
    }

    /// <summary>The tenant's keys, oldest first, optionally only those whose prefix starts with <paramref name="prefix"/>.</summary>
    public async Task<IReadOnlyList<ApiKeyInfo>> ListKeysAsync(Guid tenantId, string? prefix, CancellationToken cancellationToken)
    {
        // starts_with, not LIKE: the prefix is data, never a pattern.
        await using var command = db.CreateCommand(
            $"SELECT {KeyColumns} FROM api_keys WHERE tenant_id = $1 AND ($2::text IS NULL OR starts_with(prefix, $2)) ORDER BY created_at, prefix");
        command.Parameters.AddWithValue(tenantId);
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)prefix ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var keys = new List<ApiKeyInfo>();
        while (await reader.ReadAsync(cancellationToken))
        {
            keys.Add(ReadKey(reader));
        }

        return keys;
    }

    /// <summary>One key of the tenant, or null.</summary>
    public async Task<ApiKeyInfo?> GetKeyAsync(Guid tenantId, Guid keyId, CancellationToken cancellationToken)
    {
        await using var command = db.CreateCommand($"SELECT {KeyColumns} FROM api_keys WHERE id = $1 AND tenant_id = $2");
        command.Parameters.AddWithValue(keyId);
        command.Parameters.AddWithValue(tenantId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? ReadKey(reader) : null;
    }

    /// <summary>Revokes a key of the tenant (a revoked key keeps its first revocation time); null when there is no such key.</summary>
    public async Task<ApiKeyInfo?> RevokeKeyAsync(Guid tenantId, Guid keyId, CancellationToken cancellationToken)
    {
        await using var command = db.CreateCommand(
            $"UPDATE api_keys SET revoked_at = coalesce(revoked_at, $3) WHERE id = $1 AND tenant_id = $2 RETURNING {KeyColumns}");
        command.Parameters.AddWithValue(keyId);
        command.Parameters.AddWithValue(tenantId);
        command.Parameters.AddWithValue(time.GetUtcNow());
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? ReadKey(reader) : null;
    }

    /// <summary>
    /// Sets the tenant's budget; null when the tenant does not exist. When the period or currency changes (or there was
    /// no budget), the Redis spending counter of the new period is dropped: it counted other costs (or none, since spending
    /// is charged only while a budget exists), and the next read seeds it again from the recorded usage.
    /// </summary>
    public async Task<Budget?> SetBudgetAsync(Guid tenantId, string period, decimal limit, string currency, IReadOnlyList<double> softThresholds,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(softThresholds);
        await using var connection = await db.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        Budget? previous;
        await using (var select = new NpgsqlCommand(
            $"SELECT {TenantQueries.BudgetColumns} FROM tenants t LEFT JOIN tenant_budgets b ON b.tenant_id = t.id WHERE t.id = $1 FOR UPDATE OF t",
            connection, transaction))
        {
            select.Parameters.AddWithValue(tenantId);
            await using var reader = await select.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken))
            {
                return null;
            }

            previous = TenantQueries.ReadBudget(reader, 0);
        }

        Budget budget;
        await using (var upsert = new NpgsqlCommand(
            "INSERT INTO tenant_budgets AS b (tenant_id, period, limit_amount, currency, soft_thresholds, updated_at) VALUES ($1, $2, $3, $4, $5, $6) " +
            "ON CONFLICT (tenant_id) DO UPDATE SET period = excluded.period, limit_amount = excluded.limit_amount, currency = excluded.currency, " +
            $"soft_thresholds = excluded.soft_thresholds, updated_at = excluded.updated_at RETURNING {TenantQueries.BudgetColumns}", connection, transaction))
        {
            upsert.Parameters.AddWithValue(tenantId);
            upsert.Parameters.AddWithValue(period);
            upsert.Parameters.AddWithValue(limit);
            upsert.Parameters.AddWithValue(currency);
            upsert.Parameters.AddWithValue(softThresholds.ToArray());
            upsert.Parameters.AddWithValue(time.GetUtcNow());
            await using var reader = await upsert.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            budget = TenantQueries.ReadBudget(reader, 0)!;
        }

        await transaction.CommitAsync(cancellationToken);
        if (previous is null || previous.Period != budget.Period || previous.Currency != budget.Currency)
        {
            await DropSpendCounterAsync(budget, cancellationToken);
        }

        return budget;
    }

    /// <summary>Removes the tenant's budget (and its spending counter); false when the tenant does not exist.</summary>
    public async Task<bool> DeleteBudgetAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        await using var command = db.CreateCommand(
            $"WITH deleted AS (DELETE FROM tenant_budgets b WHERE b.tenant_id = $1 RETURNING {TenantQueries.BudgetColumns}) " +
            $"SELECT {TenantQueries.BudgetColumns} FROM tenants t LEFT JOIN deleted b ON true WHERE t.id = $1");
        command.Parameters.AddWithValue(tenantId);
        Budget? deleted;
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            if (!await reader.ReadAsync(cancellationToken))
            {
                return false;
            }

            deleted = TenantQueries.ReadBudget(reader, 0);
        }

        if (deleted is not null)
        {
            await DropSpendCounterAsync(deleted, cancellationToken);
        }

        return true;
    }

    /// <summary>Threshold crossings recorded for the tenant's budget period starting at <paramref name="periodStart"/>, oldest first.</summary>
    public async Task<IReadOnlyList<BudgetEvent>> ListBudgetEventsAsync(Guid tenantId, string period, DateTimeOffset periodStart, CancellationToken cancellationToken)
    {
        await using var command = db.CreateCommand(
            "SELECT id, tenant_id, kind, threshold, period, period_start, spent, limit_amount, currency, occurred_at FROM budget_events " +
            "WHERE tenant_id = $1 AND period = $2 AND period_start = $3 ORDER BY occurred_at, threshold");
        command.Parameters.AddWithValue(tenantId);
        command.Parameters.AddWithValue(period);
        command.Parameters.AddWithValue(periodStart);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var events = new List<BudgetEvent>();
        while (await reader.ReadAsync(cancellationToken))
        {
            events.Add(new BudgetEvent(
                reader.GetGuid(0),
                reader.GetGuid(1),
                reader.GetString(2),
                reader.GetDouble(3),
                reader.GetString(4),
                reader.GetFieldValue<DateTimeOffset>(5),
                reader.GetDecimal(6),
                reader.GetDecimal(7),
                reader.GetString(8),
                reader.GetFieldValue<DateTimeOffset>(9)));
        }

        return events;
    }

    /// <summary>Sets the price of a model (whether or not it is registered).</summary>
    public async Task<ModelPrice> SetPriceAsync(string model, decimal per1kInferences, decimal perInputElement, string currency, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(model);
        await using var command = db.CreateCommand(
            "INSERT INTO model_prices (model, per_1k_inferences, per_input_element, currency, updated_at) VALUES ($1, $2, $3, $4, $5) " +
            "ON CONFLICT (model) DO UPDATE SET per_1k_inferences = excluded.per_1k_inferences, per_input_element = excluded.per_input_element, " +
            $"currency = excluded.currency, updated_at = excluded.updated_at RETURNING {PriceColumns}");
        command.Parameters.AddWithValue(model);
        command.Parameters.AddWithValue(per1kInferences);
        command.Parameters.AddWithValue(perInputElement);
        command.Parameters.AddWithValue(currency);
        command.Parameters.AddWithValue(time.GetUtcNow());
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return TenantQueries.ReadPrice(reader);
    }

    /// <summary>Every model price, by model name.</summary>
    public async Task<IReadOnlyList<ModelPrice>> ListPricesAsync(CancellationToken cancellationToken) =>
        [.. (await TenantQueries.LoadPricesAsync(db, cancellationToken)).Values.OrderBy(p => p.Model, StringComparer.Ordinal)];

    /// <summary>The price of a model, or null.</summary>
    public async Task<ModelPrice?> GetPriceAsync(string model, CancellationToken cancellationToken)
    {
        await using var command = db.CreateCommand($"SELECT {PriceColumns} FROM model_prices WHERE model = $1");
        command.Parameters.AddWithValue(model);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? TenantQueries.ReadPrice(reader) : null;
    }

    /// <summary>Removes a model's price (its inferences become free); false when it had none.</summary>
    public async Task<bool> DeletePriceAsync(string model, CancellationToken cancellationToken)
    {
        await using var command = db.CreateCommand("DELETE FROM model_prices WHERE model = $1");
        command.Parameters.AddWithValue(model);
        return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
    }

    private async Task DropSpendCounterAsync(Budget budget, CancellationToken cancellationToken)
    {
        var (start, _) = BudgetPeriods.Bounds(budget.Period, time.GetUtcNow());
        var database = redis.GetDatabase();
        await database.KeyDeleteAsync(TenancyChannels.SpendKey(budget.TenantId, start));
    }

    private static void AddDraft(NpgsqlCommand command, TenantDraft draft)
    {
        command.Parameters.AddWithValue(draft.Name);
        foreach (var value in new[] { draft.Team, draft.Project, draft.Customer, draft.CostCenter, draft.Environment })
        {
            command.Parameters.Add(new NpgsqlParameter { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        }

        command.Parameters.AddWithValue(draft.AllowedModels.ToArray());
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)draft.RateLimit?.RequestsPerSecond ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Double });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)draft.RateLimit?.Burst ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer });
    }

    private static ApiKeyInfo ReadKey(NpgsqlDataReader reader) => new(
        reader.GetGuid(0),
        reader.GetGuid(1),
        reader.GetString(2),
        reader.GetString(3),
        reader.GetFieldValue<DateTimeOffset>(4),
        reader.IsDBNull(5) ? null : reader.GetFieldValue<DateTimeOffset>(5),
        reader.IsDBNull(6) ? null : reader.GetFieldValue<DateTimeOffset>(6),
        reader.IsDBNull(7) ? null : reader.GetFieldValue<DateTimeOffset>(7));
}
