using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Platform.Tenancy.Enforcement;
using Platform.TestSupport;

namespace Platform.Tenancy.Tests;

/// <summary>The ledger under concurrency: requests share scripts, and limits, records and thresholds stay exact.</summary>
[Collection(UsageBufferCollection.Name)]
public sealed class UsageLedgerTests(InfrastructureFixture infra) : IDisposable
{
    private readonly ServiceProvider _metrics = new ServiceCollection().AddMetrics().BuildServiceProvider();

    public void Dispose() => _metrics.Dispose();

    private CancellationToken Ct => TestContext.Current.CancellationToken;

    private UsageLedger Ledger(StackExchange.Redis.IConnectionMultiplexer redis, int callsInFlight = 2, int maxItems = 64) => new(redis, infra.Db,
        TimeProvider.System, Options.Create(new UsageLedgerOptions { CallsInFlight = callsInFlight, MaxItems = maxItems }), _metrics.GetRequiredService<IMeterFactory>());

    private static TenantContext Caller(Budget? budget = null)
    {
        var tenantId = budget?.TenantId ?? Guid.NewGuid();
        var tenant = new Tenant(tenantId, $"ledger-{tenantId:N}", null, null, null, null, null, [Tenant.AllModels], null, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow);
        return new TenantContext(Guid.NewGuid(), "pk_ledger", tenant, budget);
    }

    // Sizes of the shared scripts, per operation, as the ledger reports them.
    private MeterListener ListenToSharing(List<(string Operation, int Requests)> calls)
    {
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Name == "platform.tenancy.ledger_shared_requests")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<int>((_, value, tags, _) =>
        {
            lock (calls)
            {
                calls.Add(((string)tags[0].Value!, value));
            }
        });
        listener.Start();
        return listener;
    }

    [Theory]
    [InlineData(2)]
    [InlineData(0)]
    public async Task ConcurrentAdmissionsOnTwoReplicasShareScriptsAndAdmitExactlyTheBurst(int callsInFlight)
    {
        await using var a = infra.NewRedisConnection();
        await using var b = infra.NewRedisConnection();
        var replicas = new[] { Ledger(a, callsInFlight), Ledger(b, callsInFlight) };
        var caller = Caller();
        // Burst 50, refilling so slowly (0.01/s) that the test's own duration adds no token.
        var limit = new RateLimit(0.01, 50);
        var calls = new List<(string Operation, int Requests)>();
        using var listener = ListenToSharing(calls);

        var admissions = await Task.WhenAll(Enumerable.Range(0, 200).Select(i => replicas[i % 2].AdmitAsync(caller, limit, Ct)));

        Assert.Equal(50, admissions.Count(x => x.RateLimit.Allowed));
        // Each admitted request saw the bucket the one before it left, within a shared script as across scripts.
        Assert.Equal(Enumerable.Range(0, 50).Reverse(), admissions.Where(x => x.RateLimit.Allowed).Select(x => (int)x.RateLimit.Remaining).OrderDescending());
        Assert.All(admissions.Where(x => !x.RateLimit.Allowed), x => Assert.InRange(x.RateLimit.RetryAfter, TimeSpan.FromSeconds(90), TimeSpan.FromSeconds(101)));
        lock (calls)
        {
            Assert.Equal(200, calls.Where(c => c.Operation == "admit").Sum(c => c.Requests));
            if (callsInFlight > 0)
            {
                Assert.Contains(calls, c => c.Requests > 1);
            }
            else
            {
                // Sharing off: one script per request.
                Assert.All(calls, c => Assert.Equal(1, c.Requests));
            }
        }
    }

    [Fact]
    public async Task ABusyKeyIsAdmittedFromLeasesAndTwoReplicasTogetherAdmitExactlyTheBurst()
    {
        await using var a = infra.NewRedisConnection();
        await using var b = infra.NewRedisConnection();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var first = LeasingLedger(a, time);
        using var second = LeasingLedger(b, time);
        var replicas = new[] { first, second };
        var caller = Caller();
        // Burst 6,400 (1/64 of it is 100; these ledgers lease at most 64), refilling so slowly (0.01/s) that the test's own
        // duration adds none.
        var limit = new RateLimit(0.01, 6400);
        var leased = new List<long>();
        using var listener = ListenTo("platform.tenancy.lease_admissions", leased);

        // 200 admissions on each replica make the key busy there: leases start with the next window.
        var admitted = await AdmittedAsync(replicas, caller, limit, 400);
        Assert.Empty(leased);
        time.Advance(TimeSpan.FromMilliseconds(250));
        for (var wave = 0; wave < 125; wave++)
        {
            admitted += await AdmittedAsync(replicas, caller, limit, 64);
        }

        lock (leased)
        {
            Assert.True(leased.Sum() > 1000, $"{leased.Sum()} admissions from leases");
        }

        // Leased tokens were taken from the bucket before use: never more than the burst, and once the leases have expired
        // and handed back what they held, exactly the burst.
        Assert.InRange(admitted, 6000, 6400);
        time.Advance(TimeSpan.FromMilliseconds(250));
        await Waits.UntilAsync(async () =>
        {
            admitted += await AdmittedAsync(replicas, caller, limit, 200);
            return admitted == 6400;
        }, TimeSpan.FromSeconds(10), "the leases' leftovers admitted", Ct);
        time.Advance(TimeSpan.FromMilliseconds(500));
        Assert.Equal(0, await AdmittedAsync(replicas, caller, limit, 200));
    }

    [Fact]
    public async Task TokensAnExpiredLeaseStillHoldsGoBackToTheBucket()
    {
        await using var a = infra.NewRedisConnection();
        await using var b = infra.NewRedisConnection();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var busy = LeasingLedger(a, time);
        using var other = LeasingLedger(b, time);
        var caller = Caller();
        var limit = new RateLimit(0.01, 6400);
        var returned = new List<long>();
        using var listener = ListenTo("platform.tenancy.lease_tokens_returned", returned);

        Assert.Equal(200, await AdmittedAsync([busy], caller, limit, 200));
        time.Advance(TimeSpan.FromMilliseconds(250));
        // The next admission leases 64 tokens (1/64 of the burst is 100, the key's last window 200); 10 of them are used.
        for (var i = 0; i < 11; i++)
        {
            Assert.True((await busy.AdmitAsync(caller, limit, Ct)).RateLimit.Allowed);
        }

        // The other replica gets what the bucket has left, no leased token twice: 6,400 − 211 − 54 held by the lease.
        Assert.Equal(6135, await AdmittedAsync([other], caller, limit, 6200));

        // The lease expires; its 54 tokens go back and can be used once.
        time.Advance(TimeSpan.FromMilliseconds(250));
        await Waits.UntilAsync(async () => (await other.AdmitAsync(caller, limit, Ct)).RateLimit.Allowed, TimeSpan.FromSeconds(10), "a returned token", Ct);
        Assert.Equal(53, await AdmittedAsync([other], caller, limit, 100));
        lock (returned)
        {
            Assert.Equal(54, returned.Sum());
        }
    }

    [Fact]
    public async Task WhenRedisStopsAnsweringNoRequestIsAdmittedFromALease()
    {
        // Short timeouts, so the paused server shows up as failed calls within the test.
        await using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(infra.RedisConnectionString, o =>
        {
            Platform.Redis.RedisServiceCollectionExtensions.Configure(o);
            o.AsyncTimeout = 300;
            o.SyncTimeout = 300;
        });
        await using var admin = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(infra.RedisConnectionString, o =>
        {
            Platform.Redis.RedisServiceCollectionExtensions.Configure(o);
            o.AllowAdmin = true;
        });
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var ledger = LeasingLedger(redis, time);
        var caller = Caller();
        var limit = new RateLimit(0.01, 6400);
        var leased = new List<long>();
        using var listener = ListenTo("platform.tenancy.lease_admissions", leased);
        Assert.Equal(200, await AdmittedAsync([ledger], caller, limit, 200));
        time.Advance(TimeSpan.FromMilliseconds(250));
        Assert.True((await ledger.AdmitAsync(caller, limit, Ct)).RateLimit.Allowed);
        Assert.True((await ledger.AdmitAsync(caller, limit, Ct)).RateLimit.Allowed);
        lock (leased)
        {
            Assert.Equal(1, leased.Sum());
        }

        // Redis holds every write (the scripts and LPUSH) as if it were away: the usage record fails, and with it the lease.
        var server = admin.GetServer(admin.GetEndPoints()[0]);
        await server.ExecuteAsync("CLIENT", "PAUSE", "5000", "WRITE");
        try
        {
            var recorded = await Record.ExceptionAsync(() => ledger.RecordAsync(
                new UsageRecord(Guid.CreateVersion7(), caller.Tenant.Id, null, "mlp", 1, 200, 1, 1, 0m, "EUR", null, DateTimeOffset.UtcNow, "paused"), null, Ct));
            Assert.True(recorded is TimeoutException or StackExchange.Redis.RedisException, $"the record: {recorded}");
            var admitted = await Record.ExceptionAsync(() => ledger.AdmitAsync(caller, limit, Ct));
            Assert.True(admitted is TimeoutException or StackExchange.Redis.RedisException, $"the admission: {admitted}");
        }
        finally
        {
            await server.ExecuteAsync("CLIENT", "UNPAUSE");
        }

        lock (leased)
        {
            Assert.Equal(1, leased.Sum());
        }

        // Once Redis answers again (and the connection is back), admissions go on.
        await Waits.UntilAsync(async () =>
        {
            try
            {
                return (await ledger.AdmitAsync(caller, limit, Ct)).RateLimit.Allowed;
            }
            catch (Exception ex) when (ex is TimeoutException or StackExchange.Redis.RedisException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(20), "admissions once Redis answers again", Ct);
    }

    [Fact]
    public async Task KeysWithABudgetASmallBurstOrLittleTrafficTakeEveryTokenFromRedis()
    {
        await using var redis = infra.NewRedisConnection();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var ledger = LeasingLedger(redis, time);
        var calls = new List<(string Operation, int Requests)>();
        using var sharing = ListenToSharing(calls);
        var leased = new List<long>();
        using var leases = ListenTo("platform.tenancy.lease_admissions", leased);
        var withBudget = Caller(new Budget(Guid.NewGuid(), BudgetPeriods.Monthly, 1000m, "EUR", [], DateTimeOffset.UtcNow));
        var smallBurst = Caller();
        var quiet = Caller();

        for (var window = 0; window < 3; window++)
        {
            Assert.Equal(200, await AdmittedAsync([ledger], withBudget, new RateLimit(0.01, 6400), 200));
            // 1/64 of a burst of 127 is a single token: not worth a lease.
            Assert.Equal(20, await AdmittedAsync([ledger], smallBurst, new RateLimit(0.01, 127), 20));
            // One admission in the last window: a lease of one token would save nothing.
            Assert.Equal(1, await AdmittedAsync([ledger], quiet, new RateLimit(0.01, 6400), 1));
            time.Advance(TimeSpan.FromMilliseconds(250));
        }

        lock (leased)
        {
            Assert.Empty(leased);
        }

        lock (calls)
        {
            Assert.Equal(3 * 221, calls.Where(c => c.Operation == "admit").Sum(c => c.Requests));
        }
    }

    // Admits count requests (concurrently, spread over the replicas in turn) and returns how many were allowed.
    private async Task<int> AdmittedAsync(UsageLedger[] replicas, TenantContext caller, RateLimit limit, int count)
    {
        var admissions = await Task.WhenAll(Enumerable.Range(0, count).Select(i => replicas[i % replicas.Length].AdmitAsync(caller, limit, Ct)));
        return admissions.Count(x => x.RateLimit.Allowed);
    }

    private UsageLedger LeasingLedger(StackExchange.Redis.IConnectionMultiplexer redis, TimeProvider time) => new(redis, infra.Db, time,
        Options.Create(new UsageLedgerOptions { LeaseTokens = 64, LeaseDuration = TimeSpan.FromMilliseconds(250) }), _metrics.GetRequiredService<IMeterFactory>());

    // Sums of a long counter of the ledger, as reported.
    private static MeterListener ListenTo(string name, List<long> values)
    {
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Name == name)
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) =>
        {
            lock (values)
            {
                values.Add(value);
            }
        });
        listener.Start();
        return listener;
    }

    [Fact]
    public async Task APeriodsFirstConcurrentRequestsSumItsRecordsOnce()
    {
        await using var redis = infra.NewRedisConnection();
        var ledger = Ledger(redis);
        Budget NewBudget() => new(Guid.NewGuid(), BudgetPeriods.Monthly, 10m, "EUR", [], DateTimeOffset.UtcNow);
        using var trace = new System.Diagnostics.Activity("test").Start();
        using var counter = new NpgsqlCommandCounter(trace.TraceId, "sum(cost)");

        Assert.Equal(0m, (await ledger.GetStateAsync(NewBudget(), Ct)).Spent);
        Assert.Equal(1, counter.Count);

        // 32 requests of a tenant whose period has just begun (no spend counter in Redis yet), all waiting before the
        // first sum can finish.
        var budget = NewBudget();
        Task<BudgetState[]> all;
        await using (await infra.LockTableAsync("usage_records", Ct))
        {
            all = Task.WhenAll(Enumerable.Range(0, 32).Select(_ => ledger.GetStateAsync(budget, Ct)));
            // Every request has had its answer from Redis (no counter) and one sum waits on the lock.
            await Waits.UntilAsync(() => redis.GetCounters().Interactive is { PendingUnsentItems: 0, SentItemsAwaitingResponse: 0 },
                TimeSpan.FromSeconds(10), "Redis's answers to the 32 requests", Ct);
            await Waits.UntilAsync(async () => await infra.WaitingOnLocksAsync("sum(cost)", Ct) >= 1, TimeSpan.FromSeconds(10), "a sum waiting on the lock", Ct);
        }

        var states = await all;

        Assert.All(states, s => Assert.Equal(0m, s.Spent));
        Assert.Equal(2, counter.Count);
    }

    [Fact]
    public async Task ConcurrentChargesKeepEveryRecordAndReportEachThresholdOnce()
    {
        await using var redis = infra.NewRedisConnection();
        var ledger = Ledger(redis);
        var budget = new Budget(Guid.NewGuid(), BudgetPeriods.Monthly, 10m, "EUR", [0.5, 0.8], DateTimeOffset.UtcNow);
        var calls = new List<(string Operation, int Requests)>();
        using var listener = ListenToSharing(calls);

        // 100 charges of 0.25: 25 in all, crossing 5, 8 and 10 once each.
        var charges = await Task.WhenAll(Enumerable.Range(0, 100).Select(i => ledger.RecordAsync(
            new UsageRecord(Guid.CreateVersion7(), budget.TenantId, null, "mlp", 1, 200, 1, 1, 0.25m, "EUR", null, DateTimeOffset.UtcNow, $"r{i}"), budget, Ct)));

        Assert.Equal([0.5, 0.8, 1.0], charges.SelectMany(c => c.Crossed).Select(e => e.Threshold).Order());
        Assert.Equal(25m, charges.Max(c => c.Budget!.Spent));
        Assert.Equal(100, charges.Select(c => c.Budget!.Spent).Distinct().Count());
        Assert.Equal(25m, (await ledger.GetStateAsync(budget, Ct)).Spent);
        lock (calls)
        {
            Assert.Contains(calls, c => c.Operation == "charge" && c.Requests > 1);
        }

        // Every record reaches Postgres through the usage writer, once.
        var writer = new UsageWriter(redis, infra.Db, TimeProvider.System, new UsageWriterTelemetry(_metrics.GetRequiredService<IMeterFactory>()), NullLogger<UsageWriter>.Instance);
        await Waits.UntilAsync(async () =>
        {
            await writer.DrainOnceAsync(Ct);
            await using var count = infra.Db.CreateCommand("SELECT count(*) FROM usage_records WHERE tenant_id = $1");
            count.Parameters.AddWithValue(budget.TenantId);
            return (long)(await count.ExecuteScalarAsync(Ct))! == 100;
        }, TimeSpan.FromSeconds(30), "all 100 records written", Ct);
    }

    // Charged records share a script (more values than Lua's unpack takes at once); records with nothing to charge go as
    // one plain LPUSH ("push"). Either way every record is kept, in the order the charges were made.
    [Theory]
    [InlineData(true, "charge")]
    [InlineData(false, "push")]
    public async Task MoreRecordsThanLuaCanPassAtOnceShareOneCallAndKeepTheirOrder(bool charged, string operation)
    {
        await using var redis = infra.NewRedisConnection();
        var ledger = Ledger(redis, callsInFlight: 1, maxItems: 10_000);
        var tenant = Guid.NewGuid();
        var budget = charged ? new Budget(tenant, BudgetPeriods.Monthly, 1_000_000m, "EUR", [], DateTimeOffset.UtcNow) : null;
        var calls = new List<(string Operation, int Requests)>();
        using var listener = ListenToSharing(calls);

        // The first charge leaves alone and waits in Redis behind a busy server, while the 8,999 behind it queue and then
        // leave together.
        var busy = KeepBusy(redis, TimeSpan.FromSeconds(2));
        var records = Enumerable.Range(0, 9_000).Select(i =>
            new UsageRecord(Guid.CreateVersion7(), tenant, null, "mlp", 1, 200, 1, 1, charged ? 0.001m : 0m, "EUR", null, DateTimeOffset.UtcNow, $"r{i}")).ToArray();
        var results = await Task.WhenAll(records.Select(r => ledger.RecordAsync(r, budget, Ct)));
        await busy;

        lock (calls)
        {
            Assert.Contains(calls, c => c.Operation == operation && c.Requests > 8_000);
            Assert.Equal(9_000, calls.Where(c => c.Operation == operation).Sum(c => c.Requests));
        }

        if (charged)
        {
            // Each charge added to the counter on its own, one after another.
            Assert.Equal(9m, results.Max(r => r.Budget!.Spent));
            Assert.Equal(9_000, results.Select(r => r.Budget!.Spent).Distinct().Count());
        }
        else
        {
            Assert.All(results, r => Assert.Null(r.Budget));
        }

        // LPUSH order: the newest at the head, so reading the list backwards gives the charges' order.
        var pending = await redis.GetDatabase().ListRangeAsync(UsageBuffer.PendingKey);
        var ours = pending.Select(v => (string)v!).Where(json => json.Contains(tenant.ToString(), StringComparison.Ordinal))
            .Select(json => System.Text.Json.JsonSerializer.Deserialize<UsageRecord>(json, System.Text.Json.JsonSerializerOptions.Web)!.RequestId).Reverse();
        Assert.Equal(records.Select(r => r.RequestId), ours);
    }

    [Fact]
    public async Task ChargedRecordsAndRecordsWithNothingToChargeShareOneScript()
    {
        await using var redis = infra.NewRedisConnection();
        var ledger = Ledger(redis, callsInFlight: 1, maxItems: 64);
        var tenant = Guid.NewGuid();
        var budget = new Budget(tenant, BudgetPeriods.Monthly, 100m, "EUR", [], DateTimeOffset.UtcNow);
        var calls = new List<(string Operation, int Requests)>();
        using var listener = ListenToSharing(calls);

        // Alternating, so any shared call holds both kinds; the first leaves alone, the others queue behind it.
        var busy = KeepBusy(redis, TimeSpan.FromMilliseconds(300));
        var results = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => ledger.RecordAsync(
            new UsageRecord(Guid.CreateVersion7(), tenant, null, "mlp", 1, 200, 1, 1, i % 2 == 0 ? 0.5m : 0m, "EUR", null, DateTimeOffset.UtcNow, $"m{i}"),
            i % 2 == 0 ? budget : null, Ct)));

        await busy;
        Assert.Equal(10m, results.Where(r => r.Budget is not null).Max(r => r.Budget!.Spent));
        Assert.Equal(10m, (await ledger.GetStateAsync(budget, Ct)).Spent);
        var pending = await redis.GetDatabase().ListRangeAsync(UsageBuffer.PendingKey);
        Assert.Equal(40, pending.Count(v => ((string)v!).Contains(tenant.ToString(), StringComparison.Ordinal)));
        lock (calls)
        {
            Assert.Equal(40, calls.Where(c => c.Operation is "charge" or "push").Sum(c => c.Requests));
            Assert.Contains(calls, c => c.Operation == "charge" && c.Requests > 1);
        }
    }

    // Platform's own Redis spans (Aspire's profiler-based ones are off): one per shared call, a child of the first request's
    // span, saying how many requests it carried.
    [Fact]
    public async Task EachSharedCallIsOneRedisSpanThatSaysHowManyRequestsItCarried()
    {
        await using var redis = infra.NewRedisConnection();
        var ledger = Ledger(redis, callsInFlight: 1, maxItems: 64);
        var spans = new List<System.Diagnostics.Activity>();
        using var tests = new System.Diagnostics.ActivitySource("Platform.Tenancy.Tests");
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = source => source.Name is Platform.Redis.RedisSpans.SourceName or "Platform.Tenancy.Tests",
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) => System.Diagnostics.ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                lock (spans)
                {
                    spans.Add(activity);
                }
            },
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);
        var caller = Caller();

        System.Diagnostics.ActivityTraceId trace;
        using (var request = tests.StartActivity("request"))
        {
            trace = request!.TraceId;
            var busy = KeepBusy(redis, TimeSpan.FromMilliseconds(300));
            await Task.WhenAll(Enumerable.Range(0, 40).Select(_ => ledger.AdmitAsync(caller, new RateLimit(100, 100), Ct)));
            await Task.WhenAll(Enumerable.Range(0, 40).Select(i => ledger.RecordAsync(
                new UsageRecord(Guid.CreateVersion7(), caller.Tenant.Id, null, "mlp", 1, 200, 1, 1, 0m, "EUR", null, DateTimeOffset.UtcNow, $"s{i}"), null, Ct)));
            await busy;
        }

        List<System.Diagnostics.Activity> ours;
        lock (spans)
        {
            ours = [.. spans.Where(s => s.Source.Name == Platform.Redis.RedisSpans.SourceName && s.TraceId == trace)];
        }

        foreach (var (purpose, command) in new[] { ("ledger.admit", "EVALSHA"), ("ledger.push", "LPUSH") })
        {
            var calls = ours.Where(s => (string?)s.GetTagItem("platform.redis.purpose") == purpose).ToList();
            Assert.All(calls, s =>
            {
                Assert.Equal(command, s.DisplayName);
                Assert.Equal(System.Diagnostics.ActivityKind.Client, s.Kind);
                Assert.Equal("redis", s.GetTagItem("db.system.name"));
                Assert.Equal(command, s.GetTagItem("db.operation.name"));
            });
            // Every request is in exactly one call, and the calls were shared.
            Assert.Equal(40, calls.Sum(s => (int?)s.GetTagItem("db.operation.batch.size") ?? 1));
            Assert.Contains(calls, s => s.GetTagItem("db.operation.batch.size") is > 1);
        }
    }

    // A script that keeps Redis busy for a while, sent first on the connection: calls made meanwhile wait behind it.
    private static Task KeepBusy(StackExchange.Redis.IConnectionMultiplexer redis, TimeSpan busy) =>
        redis.GetDatabase().ScriptEvaluateAsync("""
            local function now() local t = redis.call('TIME') return t[1] * 1000000 + t[2] end
            local start = now()
            repeat until now() - start > tonumber(ARGV[1])
            """, values: [(long)(busy.TotalMicroseconds)]);

    [Fact]
    public async Task WithoutRedisEveryQueuedRequestFailsAndNoneIsAdmittedOrRecorded()
    {
        // A connection that never reaches a server: every request of a shared call must see the failure (fail closed).
        await using var away = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(new StackExchange.Redis.ConfigurationOptions
        {
            EndPoints = { "127.0.0.1:1" },
            AbortOnConnectFail = false,
            ConnectTimeout = 200,
            SyncTimeout = 500,
            AsyncTimeout = 500,
        });
        var ledger = Ledger(away);
        var caller = Caller();

        var attempts = Enumerable.Range(0, 20).Select(_ => ledger.AdmitAsync(caller, new RateLimit(100, 100), Ct)).ToArray();
        foreach (var attempt in attempts)
        {
            await Assert.ThrowsAnyAsync<Exception>(() => attempt);
        }

        Assert.All(attempts, t => Assert.True(t.IsFaulted));

        // Records, charged (the script) and with nothing to charge (the plain LPUSH): none may look stored.
        var budget = new Budget(caller.Tenant.Id, BudgetPeriods.Monthly, 100m, "EUR", [], DateTimeOffset.UtcNow);
        var records = Enumerable.Range(0, 20).Select(i => ledger.RecordAsync(
            new UsageRecord(Guid.CreateVersion7(), caller.Tenant.Id, null, "mlp", 1, 200, 1, 1, i % 2 == 0 ? 0.5m : 0m, "EUR", null, DateTimeOffset.UtcNow, $"x{i}"),
            i % 2 == 0 ? budget : null, Ct)).ToArray();
        foreach (var record in records)
        {
            await Assert.ThrowsAnyAsync<Exception>(() => record);
        }
    }
}

/// <summary>
/// Test classes that read or drain the shared usage buffer in Redis, or need Postgres (UsagePipelineTests stops it), run
/// one after another.
/// </summary>
[CollectionDefinition(Name)]
public sealed class UsageBufferCollection
{
    /// <summary>The collection's name.</summary>
    public const string Name = "usage buffer";
}
