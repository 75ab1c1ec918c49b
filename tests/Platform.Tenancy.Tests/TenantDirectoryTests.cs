using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Platform.Tenancy.Admin;
using Platform.Tenancy.Enforcement;

namespace Platform.Tenancy.Tests;

[Collection(UsageBufferCollection.Name)]
public sealed class TenantDirectoryTests(InfrastructureFixture infra)
{
    private CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A directory as an InferenceApi replica has one, once its change notifications are live.</summary>
    private async Task<TenantDirectory> NewDirectoryAsync(StackExchange.Redis.IConnectionMultiplexer redis)
    {
        var directory = new TenantDirectory(infra.Db, redis, TimeProvider.System, Options.Create(new TenantDirectoryOptions()),
            NullLogger<TenantDirectory>.Instance);
        await directory.SubscribedAsync();
        return directory;
    }

    private async Task<string> NewKeyAsync(TenantStore store)
    {
        var tenant = await store.CreateTenantAsync(
            new TenantDraft($"directory-{Guid.NewGuid():N}", null, null, null, null, null, [Tenant.AllModels], null), Ct);
        return (await store.CreateKeyAsync(tenant.Value!.Id, "k", null, Ct))!.Plaintext;
    }

    [Fact]
    public async Task ConcurrentMissesOfOneKeyShareOneLoad()
    {
        await using var redis = infra.NewRedisConnection();
        var store = new TenantStore(infra.Db, redis, TimeProvider.System);
        var calibration = await NewKeyAsync(store);
        var stampeded = await NewKeyAsync(store);
        var directory = await NewDirectoryAsync(redis);

        using var trace = new Activity("test").Start();
        using var keyQueries = new NpgsqlCommandCounter(trace.TraceId, "FROM api_keys");
        using var tenantQueries = new NpgsqlCommandCounter(trace.TraceId, "FROM tenants");

        // What one request's miss costs: the key, then its tenant.
        Assert.Equal(KeyStatus.Active, (await directory.AuthenticateAsync(calibration, Ct)).Status);
        Assert.Equal((1, 1), (keyQueries.Count, tenantQueries.Count));

        // 48 requests of a key no one has cached arrive while the first load cannot finish (as when a hot key's entry
        // expires under load): the keys table is locked until all of them are waiting.
        Task<KeyAuthentication[]> all;
        await using (var keys = await infra.LockTableAsync("api_keys", Ct))
        {
            all = Task.WhenAll(Enumerable.Range(0, 48).Select(_ => directory.AuthenticateAsync(stampeded, Ct).AsTask()));
            Assert.False(all.IsCompleted);
        }

        var results = await all;

        Assert.All(results, r => Assert.Equal(KeyStatus.Active, r.Status));
        Assert.Equal((2, 2), (keyQueries.Count, tenantQueries.Count));
    }

    [Fact]
    public async Task ALoadRunningWhenTheTenantChangesIsNotCached()
    {
        await using var redis = infra.NewRedisConnection();
        var store = new TenantStore(infra.Db, redis, TimeProvider.System);
        var key = await NewKeyAsync(store);
        var directory = await NewDirectoryAsync(redis);
        var authenticated = await directory.AuthenticateAsync(key, Ct);
        var tenantId = authenticated.Context!.Tenant.Id;

        // A change notification between a load's start and its end (the load held on a lock): the next caller reads again.
        directory.Invalidate(null);
        Task loading;
        await using (await infra.LockTableAsync("tenants", Ct))
        {
            loading = directory.GetTenantAsync(tenantId, Ct).AsTask();
            directory.Invalidate(tenantId);
        }

        await loading;

        using var trace = new Activity("test").Start();
        using var counter = new NpgsqlCommandCounter(trace.TraceId, "FROM tenants");
        Assert.NotNull(await directory.GetTenantAsync(tenantId, Ct));
        Assert.Equal(1, counter.Count);
        Assert.NotNull(await directory.GetTenantAsync(tenantId, Ct));
        Assert.Equal(1, counter.Count);
    }

    [Fact]
    public async Task ACallerThatGivesUpDoesNotFailTheOthersWaitingOnTheSameLoad()
    {
        await using var redis = infra.NewRedisConnection();
        var store = new TenantStore(infra.Db, redis, TimeProvider.System);
        var key = await NewKeyAsync(store);
        var directory = await NewDirectoryAsync(redis);

        // The load waits on a lock held here, so both callers are waiting on it when one gives up.
        var keys = await infra.LockTableAsync("api_keys", Ct);
        using var cancelled = new CancellationTokenSource();
        var quitter = directory.AuthenticateAsync(key, cancelled.Token).AsTask();
        var waiter = directory.AuthenticateAsync(key, Ct).AsTask();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => quitter);
        Assert.False(waiter.IsCompleted);
        await keys.DisposeAsync();
        Assert.Equal(KeyStatus.Active, (await waiter).Status);
    }
}
