using System.Globalization;
using System.Text.Json;
using Npgsql;
using StackExchange.Redis;

namespace Platform.Tenancy.Enforcement;

/// <summary>Budget state at admission.</summary>
/// <param name="Budget">The budget.</param>
/// <param name="Spent">Spent so far this period (in the budget's currency).</param>
/// <param name="PeriodStart">Start of the current period.</param>
/// <param name="ResetsAt">When the period ends and spending starts from zero.</param>
public sealed record BudgetState(Budget Budget, decimal Spent, DateTimeOffset PeriodStart, DateTimeOffset ResetsAt)
{
    /// <summary>Whether the hard limit is reached.</summary>
    public bool Exhausted => Spent >= Budget.Limit;

    /// <summary>Spent / limit.</summary>
    public double UsedRatio => (double)(Spent / Budget.Limit);
}

/// <summary>Result of <see cref="UsageLedger.AdmitAsync"/>.</summary>
/// <param name="RateLimit">The rate-limit decision (a token was taken when allowed).</param>
/// <param name="Budget">Budget state when the tenant has a budget.</param>
public sealed record Admission(RateLimitDecision RateLimit, BudgetState? Budget);

/// <summary>Result of <see cref="UsageLedger.RecordAsync"/>.</summary>
/// <param name="Budget">Budget state after the charge, when it counted toward a budget.</param>
/// <param name="Crossed">Budget events raised by this charge (thresholds it crossed).</param>
public sealed record ChargeResult(BudgetState? Budget, IReadOnlyList<BudgetEvent> Crossed);

/// <summary>
/// Per-request Redis work of enforcement, one script call before dispatch and one after. Before: take a token from the
/// key's bucket and read the tenant's spending this period. After: append the usage record to the durable buffer and add
/// its cost to the spending counter in the same atomic call, so a record is never charged twice or not at all, and
/// exactly one request (the one whose charge crosses it) reports each budget threshold.
/// </summary>
public sealed class UsageLedger(IConnectionMultiplexer redis, NpgsqlDataSource db, TimeProvider time)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    // KEYS: bucket, spend counter ('' = no budget). ARGV: capacity, refill/s, cost (the token bucket's own script).
    private const string AdmitScript = RedisTokenBucket.TakeTokensLua + """
        local spent = false
        if KEYS[2] ~= '' then
          spent = redis.call('GET', KEYS[2])
        end
        return { allowed, math.floor(tokens), retry_us, spent }
        """;

    // KEYS: usage pending list, spend counter ('' = not charged). ARGV: record json, cost, expire-at (unix s), limit,
    // then the thresholds as amounts. Returns the new spending and the 1-based indexes of the amounts it crossed.
    private const string ChargeScript = """
        redis.call('LPUSH', KEYS[1], ARGV[1])
        if KEYS[2] == '' then return { false } end
        local after = tonumber(redis.call('INCRBYFLOAT', KEYS[2], ARGV[2]))
        redis.call('EXPIREAT', KEYS[2], ARGV[3])
        local before = after - tonumber(ARGV[2])
        local result = { tostring(after) }
        for i = 5, #ARGV do
          local amount = tonumber(ARGV[i])
          if before < amount and after >= amount then table.insert(result, i - 4) end
        end
        return result
        """;

    /// <summary>Takes a rate-limit token for the key and reads the tenant's budget state.</summary>
    public async Task<Admission> AdmitAsync(TenantContext caller, RateLimit limit, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(limit);
        var database = redis.GetDatabase();
        var now = time.GetUtcNow();
        var budget = caller.Budget;
        var (start, end) = budget is null ? default : BudgetPeriods.Bounds(budget.Period, now);
        var spendKey = budget is null ? string.Empty : TenancyChannels.SpendKey(caller.Tenant.Id, start);
        var result = (RedisResult[])(await database.ScriptEvaluateAsync(AdmitScript,
            [(RedisKey)$"ratelimit:{caller.KeyId:N}", (RedisKey)spendKey], [limit.Burst, limit.RequestsPerSecond, 1]))!;
        var allowed = (long)result[0] == 1;
        var decision = new RateLimitDecision(allowed, (long)result[1], allowed ? TimeSpan.Zero : TimeSpan.FromTicks((long)result[2] * 10));
        if (budget is null)
        {
            return new Admission(decision, null);
        }

        decimal spent;
        if (result[3].IsNull)
        {
            // First request of the period (or the counter was lost): start from what Postgres has recorded.
            spent = await SeedAsync(database, spendKey, budget, start, end, cancellationToken);
        }
        else
        {
            spent = decimal.Parse((string)result[3]!, NumberStyles.Float, CultureInfo.InvariantCulture);
        }

        return new Admission(decision, new BudgetState(budget, spent, start, end));
    }

    /// <summary>
    /// Appends <paramref name="record"/> to the durable buffer and, when it has a cost in the budget's currency, adds the
    /// cost to the tenant's spending; returns once Redis has both.
    /// </summary>
    public async Task<ChargeResult> RecordAsync(UsageRecord record, Budget? budget, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        var database = redis.GetDatabase();
        var json = JsonSerializer.Serialize(record, Json);
        var charged = budget is not null && record.Cost > 0 && string.Equals(record.Currency, budget.Currency, StringComparison.Ordinal);
        if (!charged)
        {
            await database.ScriptEvaluateAsync(ChargeScript, [(RedisKey)UsageBuffer.PendingKey, (RedisKey)string.Empty], [json]);
            return new ChargeResult(null, []);
        }

        var (start, end) = BudgetPeriods.Bounds(budget!.Period, record.OccurredAt);
        var thresholds = budget.SoftThresholds.Where(t => t is > 0 and < 1).Order().Append(1.0).ToArray();
        var args = new List<RedisValue>
        {
            json,
            record.Cost.ToString(CultureInfo.InvariantCulture),
            end.AddDays(1).ToUnixTimeSeconds(),
            budget.Limit.ToString(CultureInfo.InvariantCulture),
        };
        args.AddRange(thresholds.Select(t => (RedisValue)((decimal)t * budget.Limit).ToString(CultureInfo.InvariantCulture)));
        var result = (RedisResult[])(await database.ScriptEvaluateAsync(ChargeScript,
            [(RedisKey)UsageBuffer.PendingKey, (RedisKey)TenancyChannels.SpendKey(record.TenantId, start)], [.. args]))!;
        var spent = decimal.Parse((string)result[0]!, NumberStyles.Float, CultureInfo.InvariantCulture);
        var crossed = new List<BudgetEvent>();
        for (var i = 1; i < result.Length; i++)
        {
            var threshold = thresholds[(int)result[i] - 1];
            crossed.Add(new BudgetEvent(Guid.NewGuid(), record.TenantId, threshold >= 1 ? BudgetEventKinds.Exhausted : BudgetEventKinds.Soft,
                threshold, budget.Period, start, spent, budget.Limit, budget.Currency, record.OccurredAt));
        }

        if (crossed.Count > 0)
        {
            await database.ListLeftPushAsync(TenancyChannels.PendingBudgetEvents, [.. crossed.Select(e => (RedisValue)JsonSerializer.Serialize(e, Json))]);
        }

        return new ChargeResult(new BudgetState(budget, spent, start, end), crossed);
    }

    /// <summary>Spending of <paramref name="budget"/>'s tenant in the current period (seeding the counter when missing).</summary>
    public async Task<BudgetState> GetStateAsync(Budget budget, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(budget);
        var database = redis.GetDatabase();
        var (start, end) = BudgetPeriods.Bounds(budget.Period, time.GetUtcNow());
        var key = TenancyChannels.SpendKey(budget.TenantId, start);
        var value = await database.StringGetAsync(key);
        var spent = value.IsNull
            ? await SeedAsync(database, key, budget, start, end, cancellationToken)
            : decimal.Parse((string)value!, NumberStyles.Float, CultureInfo.InvariantCulture);
        return new BudgetState(budget, spent, start, end);
    }

    private async Task<decimal> SeedAsync(IDatabase database, string key, Budget budget, DateTimeOffset start, DateTimeOffset end, CancellationToken cancellationToken)
    {
        await using var command = db.CreateCommand(
            "SELECT coalesce(sum(cost), 0) FROM usage_records WHERE tenant_id = $1 AND currency = $2 AND occurred_at >= $3 AND occurred_at < $4");
        command.Parameters.AddWithValue(budget.TenantId);
        command.Parameters.AddWithValue(budget.Currency);
        command.Parameters.AddWithValue(start);
        command.Parameters.AddWithValue(end);
        var recorded = (decimal)(await command.ExecuteScalarAsync(cancellationToken))!;
        // NX: a replica that seeded (or charged) first wins; everyone then reads the same counter.
        await database.StringSetAsync(key, recorded.ToString(CultureInfo.InvariantCulture), expiry: null, when: When.NotExists);
        await database.KeyExpireAsync(key, end.AddDays(1).UtcDateTime);
        var current = await database.StringGetAsync(key);
        return decimal.Parse((string)current!, NumberStyles.Float, CultureInfo.InvariantCulture);
    }
}
