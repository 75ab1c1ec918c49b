using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Platform.Tenancy.Tests;

public sealed class ApiKeyTests
{
    [Fact]
    public void KeysVerifyOnlyWithTheirOwnSecret()
    {
        var key = ApiKeys.Generate();
        Assert.True(ApiKeys.TryParse(key.Plaintext, out var prefix, out var secret));
        Assert.Equal(key.Prefix, prefix);
        Assert.True(ApiKeys.Verify(secret, key.Salt, key.Hash));
        var other = ApiKeys.Generate();
        Assert.False(ApiKeys.Verify(secret, other.Salt, other.Hash));
        Assert.False(ApiKeys.Verify(secret[..^1] + (secret[^1] == 'A' ? 'B' : 'A'), key.Salt, key.Hash));
        Assert.DoesNotContain(secret, Convert.ToBase64String(key.Hash), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("Bearer pk_abc")]
    [InlineData("pk_0123456789ab_tooshort")]
    [InlineData("sk_0123456789ab_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    public void MalformedKeysDoNotParse(string? key) => Assert.False(ApiKeys.TryParse(key, out _, out _));
}

public sealed class RateLimitTests(InfrastructureFixture infra)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task TwoReplicasShareOneBucketExactly()
    {
        // Two connections stand for two InferenceApi replicas.
        await using var a = infra.NewRedisConnection();
        await using var b = infra.NewRedisConnection();
        var replicaA = new RedisTokenBucket(a);
        var replicaB = new RedisTokenBucket(b);
        var key = $"key-{Guid.NewGuid():N}";

        // Capacity 10, refilling slowly enough (0.01/s) that the test's own duration adds no token.
        var decisions = new List<RateLimitDecision>();
        for (var i = 0; i < 8; i++)
        {
            decisions.Add(await replicaA.TryAcquireAsync(key, 10, 0.01, cancellationToken: Ct));
            decisions.Add(await replicaB.TryAcquireAsync(key, 10, 0.01, cancellationToken: Ct));
        }

        Assert.Equal(10, decisions.Count(d => d.Allowed));
        Assert.All(decisions.Skip(10), d => Assert.False(d.Allowed));
        var refused = decisions.Last();
        Assert.InRange(refused.RetryAfter, TimeSpan.FromSeconds(90), TimeSpan.FromSeconds(101));
    }

    [Fact]
    public async Task TheBucketRefillsAtItsRate()
    {
        await using var redis = infra.NewRedisConnection();
        var bucket = new RedisTokenBucket(redis);
        var key = $"key-{Guid.NewGuid():N}";
        // One token a second: the three quick calls below cannot earn a fourth even on a loaded machine.
        for (var i = 0; i < 3; i++)
        {
            Assert.True((await bucket.TryAcquireAsync(key, 3, 1, cancellationToken: Ct)).Allowed);
        }

        var refused = await bucket.TryAcquireAsync(key, 3, 1, cancellationToken: Ct);
        Assert.False(refused.Allowed);
        Assert.InRange(refused.RetryAfter, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(1001));
        // The bucket refills by Redis' clock, the real one: the refill can only be waited out.
        await Task.Delay(refused.RetryAfter + TimeSpan.FromMilliseconds(20), Ct);
        Assert.True((await bucket.TryAcquireAsync(key, 3, 1, cancellationToken: Ct)).Allowed);
    }
}

// One after another with UsageLedgerTests: both use the one usage:pending list, whose contents the ledger's tests read and
// these tests' writers drain.
[Collection(UsageBufferCollection.Name)]
public sealed class UsagePipelineTests(InfrastructureFixture infra) : IDisposable
{
    private readonly ServiceProvider _metrics = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private UsageWriterTelemetry? _telemetry;

    private UsageWriterTelemetry Telemetry => _telemetry ??= new UsageWriterTelemetry(_metrics.GetRequiredService<IMeterFactory>());

    public void Dispose() => _metrics.Dispose();

    private CancellationToken Ct => TestContext.Current.CancellationToken;

    private static UsageRecord Record(Guid tenant, int i) => new(
        Guid.NewGuid(), tenant, null, "mlp", 1, 200, 1.5, 4, 0.000125m, "EUR", $"trace-{i}", DateTimeOffset.UtcNow);

    private UsageWriter NewWriter(StackExchange.Redis.IConnectionMultiplexer redis) => new(redis, infra.Db, TimeProvider.System, Telemetry, NullLogger<UsageWriter>.Instance);

    private async Task DrainAllAsync(UsageWriter writer)
    {
        while (await writer.DrainOnceAsync(Ct) > 0)
        {
        }
    }

    private async Task<long> CountAsync(Guid tenant)
    {
        await using var cmd = infra.Db.CreateCommand("SELECT count(*) FROM usage_records WHERE tenant_id = $1");
        cmd.Parameters.AddWithValue(tenant);
        return (long)(await cmd.ExecuteScalarAsync(Ct))!;
    }

    [Fact]
    public async Task AWriterThatDiesMidBatchLosesAndDuplicatesNothing()
    {
        await using var redis = infra.NewRedisConnection();
        var buffer = new UsageBuffer(redis);
        var tenant = Guid.NewGuid();
        for (var i = 0; i < 120; i++)
        {
            await buffer.AppendAsync(Record(tenant, i), Ct);
        }

        // A writer took records into processing and died before committing: simulate by moving some.
        var db = redis.GetDatabase();
        for (var i = 0; i < 30; i++)
        {
            await db.ListRightPopLeftPushAsync(UsageBuffer.PendingKey, UsageBuffer.ProcessingKey);
        }

        var writer = NewWriter(redis);
        await DrainAllAsync(writer);

        Assert.Equal(120, await CountAsync(tenant));
        Assert.Equal(0, await buffer.BacklogAsync(Ct));

        // Committed but not yet removed (a crash between the two): written again, counted once.
        var duplicate = Record(tenant, 999);
        await buffer.AppendAsync(duplicate, Ct);
        await writer.DrainOnceAsync(Ct);
        await db.ListLeftPushAsync(UsageBuffer.ProcessingKey, UsageBuffer.Serialize(duplicate));
        await writer.DrainOnceAsync(Ct);
        Assert.Equal(121, await CountAsync(tenant));
    }

    [Fact]
    public async Task AFullRedisStillDrainsItsRecordsToPostgres()
    {
        // What a long Postgres outage leaves behind on a Redis bounded by maxmemory with noeviction (the published pod).
        var options = ConfigurationOptions.Parse(infra.IsolatedRedisConnectionString);
        Platform.Redis.RedisServiceCollectionExtensions.Configure(options);
        options.AllowAdmin = true;
        await using var redis = await ConnectionMultiplexer.ConnectAsync(options);
        var server = redis.GetServer(redis.GetEndPoints()[0]);
        var buffer = new UsageBuffer(redis);
        var tenant = Guid.NewGuid();
        for (var i = 0; i < 1_500; i++)
        {
            await buffer.AppendAsync(Record(tenant, i), Ct);
        }

        await server.ConfigSetAsync("maxmemory", "1");
        try
        {
            // Full: a new record is refused (InferenceApi then answers 503 + Retry-After), yet the writer empties it.
            var refused = await Assert.ThrowsAsync<RedisServerException>(() => buffer.AppendAsync(Record(tenant, -1), Ct));
            Assert.StartsWith("OOM", refused.Message, StringComparison.Ordinal);
            await DrainAllAsync(NewWriter(redis));
            Assert.Equal(1_500, await CountAsync(tenant));
            Assert.Equal(0, await buffer.BacklogAsync(Ct));
        }
        finally
        {
            await server.ConfigSetAsync("maxmemory", "0");
        }
    }

    [Fact]
    public async Task ABatchPartlyWrittenBeforeIsCompletedWithoutDuplicates()
    {
        await using var redis = infra.NewRedisConnection();
        var buffer = new UsageBuffer(redis);
        var writer = NewWriter(redis);
        var tenant = Guid.NewGuid();
        var written = Enumerable.Range(0, 300).Select(i => Record(tenant, i)).ToList();
        foreach (var record in written)
        {
            await buffer.AppendAsync(record, Ct);
        }
        await DrainAllAsync(writer);

        // A crash between commit and delete leaves exactly the committed batch in processing; this one mixes rows written
        // before with new ones on both sides, several kilobytes in, so the COPY fails mid-stream and the insert that
        // follows must skip the old rows one by one and still store the new.
        var db = redis.GetDatabase();
        var batch = written.Take(150).Concat(Enumerable.Range(300, 50).Select(i => Record(tenant, i))).Concat(written.Skip(150)).ToList();
        foreach (var record in batch)
        {
            await db.ListRightPushAsync(UsageBuffer.ProcessingKey, UsageBuffer.Serialize(record));
        }
        Assert.Equal(batch.Count, await writer.DrainOnceAsync(Ct));

        Assert.Equal(350, await CountAsync(tenant));
        Assert.Equal(0, await buffer.BacklogAsync(Ct));
    }

    [Fact]
    public async Task RecordsBufferedWhilePostgresIsDownAreWrittenAfterItRestarts()
    {
        await using var redis = infra.NewRedisConnection();
        var buffer = new UsageBuffer(redis);
        var writer = NewWriter(redis);
        var tenant = Guid.NewGuid();

        await infra.App.StopAsync("postgres", cancellationToken: Ct);
        try
        {
            for (var i = 0; i < 50; i++)
            {
                await buffer.AppendAsync(Record(tenant, i), Ct);
            }

            await Assert.ThrowsAnyAsync<Npgsql.NpgsqlException>(() => writer.DrainOnceAsync(Ct));
            Assert.True(await buffer.BacklogAsync(Ct) >= 50, "records stay buffered while Postgres is down");
        }
        finally
        {
            await infra.App.StartAsync("postgres", cancellationToken: Ct);
        }

        infra.Db.Clear();
        var written = 0L;
        var lags = new List<double>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == UsageWriterTelemetry.MeterName)
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            if (instrument.Name == "platform.usage.written")
            {
                Interlocked.Add(ref written, value);
            }
        });
        listener.SetMeasurementEventCallback<double>((instrument, value, _, _) =>
        {
            if (instrument.Name == "platform.usage.write.lag")
            {
                lock (lags)
                {
                    lags.Add(value);
                }
            }
        });
        listener.Start();
        await DrainAllAsync(writer);

        Assert.Equal(50, await CountAsync(tenant));
        // The metrics say what happened: every record committed, each with its lag since the inference, nothing left.
        Assert.True(written >= 50, $"platform.usage.written counted {written}");
        Assert.True(lags.Count >= 50 && lags.All(l => l >= 0), $"{lags.Count} lag measurements");
        Assert.Equal(0, Telemetry.Backlog);
    }

    [Fact]
    public async Task AnEntryThatIsNotARecordIsSetAsideAndDoesNotBlockTheOthers()
    {
        await using var redis = infra.NewRedisConnection();
        var buffer = new UsageBuffer(redis);
        var tenant = Guid.NewGuid();
        var db = redis.GetDatabase();
        await buffer.AppendAsync(Record(tenant, 1), Ct);
        await db.ListLeftPushAsync(UsageBuffer.PendingKey, "{not json");
        await buffer.AppendAsync(Record(tenant, 2), Ct);

        var writer = NewWriter(redis);
        await DrainAllAsync(writer);

        Assert.Equal(2, await CountAsync(tenant));
        Assert.Equal(0, await buffer.BacklogAsync(Ct));
        Assert.Contains((await db.ListRangeAsync(UsageBuffer.PendingKey + ":rejected")).Select(v => (string)v!), v => v == "{not json");
    }
}
