using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using StackExchange.Redis;

namespace Platform.Tenancy.Enforcement;

/// <summary>Options of <see cref="TenantDirectory"/> (configuration section <c>Tenancy</c>).</summary>
public sealed class TenantDirectoryOptions
{
    /// <summary>Configuration section.</summary>
    public const string SectionName = "Tenancy";

    /// <summary>
    /// How long a key, tenant, budget or price read from Postgres is reused. Changes made through AdminApi reach every
    /// replica at once through Redis pub/sub; this bound covers a missed message.
    /// </summary>
    public TimeSpan CacheTtl { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long an unknown key prefix is remembered as unknown (limits database lookups from key guessing).</summary>
    public TimeSpan NegativeCacheTtl { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How often InferenceApi writes the keys' <c>last_used_at</c> (sightings are kept in memory in between).</summary>
    public TimeSpan LastUsedFlushInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Per-key rate limit of tenants that set none.</summary>
    public RateLimit DefaultRateLimit { get; set; } = new(100, 200);
}

/// <summary>Outcome of presenting an API key.</summary>
public enum KeyStatus
{
    /// <summary>Not a key of this platform, or no such key.</summary>
    Unknown,

    /// <summary>The key was revoked.</summary>
    Revoked,

    /// <summary>The key has expired.</summary>
    Expired,

    /// <summary>The key is valid.</summary>
    Active,
}

/// <summary>Who is calling: an authenticated key, its tenant and the tenant's budget.</summary>
/// <param name="KeyId">Key id.</param>
/// <param name="KeyPrefix">Key prefix (safe to log).</param>
/// <param name="Tenant">The key's tenant.</param>
/// <param name="Budget">The tenant's budget, if it has one.</param>
public sealed record TenantContext(Guid KeyId, string KeyPrefix, Tenant Tenant, Budget? Budget);

/// <summary>Result of <see cref="TenantDirectory.AuthenticateAsync"/>.</summary>
/// <param name="Status">Whether the key is usable.</param>
/// <param name="Context">Caller when <see cref="KeyStatus.Active"/>; for revoked and expired keys too (for auditing).</param>
/// <param name="Prefix">The presented key's prefix when it parsed.</param>
public sealed record KeyAuthentication(KeyStatus Status, TenantContext? Context, string? Prefix);

/// <summary>
/// Read side of tenancy for the request path: API keys, tenants, budgets and prices from Postgres, cached in memory
/// per replica and dropped on AdminApi's change notifications, so an authenticated request costs no database round trip.
/// </summary>
public sealed partial class TenantDirectory
{
    private readonly NpgsqlDataSource _db;
    private readonly IConnectionMultiplexer _redis;
    private readonly TimeProvider _time;
    private readonly TenantDirectoryOptions _options;
    private readonly ILogger<TenantDirectory> _logger;
    private readonly ConcurrentDictionary<string, Cached<StoredKey?>> _keys = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Guid, Cached<(Tenant Tenant, Budget? Budget)?>> _tenants = new();
    private readonly SharedLoads<string, StoredKey?> _keyLoads = new(StringComparer.Ordinal);
    private readonly SharedLoads<Guid, (Tenant Tenant, Budget? Budget)?> _tenantLoads = new();
    private readonly SharedLoads<bool, IReadOnlyDictionary<string, ModelPrice>> _priceLoads = new();
    private Cached<IReadOnlyDictionary<string, ModelPrice>>? _prices;
    // Counts invalidations: a load that started before one does not cache what it read (it may predate the change).
    // Loads cache, and invalidations count and clear, under one lock (both happen once per entry per TTL or change).
    private long _generation;
    private readonly Lock _writes = new();
    private Task? _subscription;

    /// <summary>Creates the directory.</summary>
    public TenantDirectory(NpgsqlDataSource db, IConnectionMultiplexer redis, TimeProvider time, IOptions<TenantDirectoryOptions> options, ILogger<TenantDirectory> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _db = db;
        _redis = redis;
        _time = time;
        _options = options.Value;
        _logger = logger;
    }

    /// <summary>Platform default per-key rate limit.</summary>
    public RateLimit DefaultRateLimit => _options.DefaultRateLimit;

    /// <summary>Checks a presented key (the full <c>pk_…</c> string).</summary>
    public async ValueTask<KeyAuthentication> AuthenticateAsync(string presented, CancellationToken cancellationToken)
    {
        EnsureSubscribed();
        if (!ApiKeys.TryParse(presented.AsSpan(), out var prefixChars, out _))
        {
            return new KeyAuthentication(KeyStatus.Unknown, null, null);
        }

        // A cached key costs no strings: the cache is searched with the presented characters and hands back its own key.
        var (prefix, stored) = TryGetCachedKey(prefixChars, out var hit) ? hit : await LoadKeyAsync(prefixChars.ToString(), cancellationToken);
        // Parsed again for the secret: a span cannot be held across the await above (it parsed before, so this cannot fail).
        ApiKeys.TryParse(presented.AsSpan(), out _, out var secret);
        if (stored is null || !ApiKeys.Verify(secret, stored.Salt, stored.Hash))
        {
            return new KeyAuthentication(KeyStatus.Unknown, null, prefix);
        }

        var tenant = await GetTenantAsync(stored.TenantId, cancellationToken);
        if (tenant is null)
        {
            return new KeyAuthentication(KeyStatus.Unknown, null, prefix);
        }

        // One context per key and tenant snapshot: a key's requests share it until either is reloaded.
        var context = stored.Context is { } last && ReferenceEquals(last.Tenant, tenant.Value.Tenant) && ReferenceEquals(last.Budget, tenant.Value.Budget)
            ? last
            : stored.Context = new TenantContext(stored.Id, prefix, tenant.Value.Tenant, tenant.Value.Budget);
        var now = _time.GetUtcNow();
        var status = stored.RevokedAt is not null ? KeyStatus.Revoked
            : stored.ExpiresAt is { } expires && expires <= now ? KeyStatus.Expired
            : KeyStatus.Active;
        return new KeyAuthentication(status, context, prefix);
    }

    /// <summary>The tenant and its budget, or null when it does not exist.</summary>
    public async ValueTask<(Tenant Tenant, Budget? Budget)?> GetTenantAsync(Guid tenantId, CancellationToken cancellationToken)
    {
        EnsureSubscribed();
        var now = _time.GetUtcNow();
        if (_tenants.TryGetValue(tenantId, out var cached) && cached.ValidUntil > now)
        {
            return cached.Value;
        }

        return await LoadOnceAsync(_tenantLoads, tenantId, id => TenantQueries.LoadTenantAsync(_db, id, CancellationToken.None),
            (id, loaded) => _tenants[id] = new Cached<(Tenant, Budget?)?>(loaded, _time.GetUtcNow() + _options.CacheTtl), cancellationToken);
    }

    /// <summary>The price of <paramref name="model"/>, or null when it is free (no price set).</summary>
    public async Task<ModelPrice?> GetPriceAsync(string model, CancellationToken cancellationToken)
    {
        EnsureSubscribed();
        var now = _time.GetUtcNow();
        var prices = _prices;
        if (prices is not null && prices.ValidUntil > now)
        {
            return prices.Value.GetValueOrDefault(model);
        }

        var loaded = await LoadOnceAsync(_priceLoads, true, _ => TenantQueries.LoadPricesAsync(_db, CancellationToken.None),
            (_, all) => _prices = new Cached<IReadOnlyDictionary<string, ModelPrice>>(all, _time.GetUtcNow() + _options.CacheTtl), cancellationToken);
        return loaded.GetValueOrDefault(model);
    }

    /// <summary>Drops everything cached about <paramref name="tenantId"/> (null: everything).</summary>
    public void Invalidate(Guid? tenantId)
    {
        lock (_writes)
        {
            _generation++;
            _keyLoads.Forget();
            _tenantLoads.Forget();
            _priceLoads.Forget();
            if (tenantId is not { } id)
            {
                _keys.Clear();
                _tenants.Clear();
                _prices = null;
                return;
            }

            _tenants.TryRemove(id, out _);
            foreach (var (prefix, entry) in _keys)
            {
                if (entry.Value is null || entry.Value.TenantId == id)
                {
                    _keys.TryRemove(prefix, out _);
                }
            }
        }
    }

    private bool TryGetCachedKey(ReadOnlySpan<char> prefix, out (string Prefix, StoredKey? Key) found)
    {
        if (_keys.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(prefix, out var key, out var cached) && cached.ValidUntil > _time.GetUtcNow())
        {
            found = (key, cached.Value);
            return true;
        }

        found = default;
        return false;
    }

    private async Task<(string Prefix, StoredKey? Key)> LoadKeyAsync(string prefix, CancellationToken cancellationToken)
    {
        var loaded = await LoadOnceAsync(_keyLoads, prefix, p => TenantQueries.LoadKeyAsync(_db, p, CancellationToken.None),
            (p, key) => _keys[p] = new Cached<StoredKey?>(key, _time.GetUtcNow() + (key is null ? _options.NegativeCacheTtl : _options.CacheTtl)),
            cancellationToken);
        return (prefix, loaded);
    }

    /// <summary>
    /// Runs <paramref name="query"/> for <paramref name="key"/> once for all concurrent callers, and caches its result
    /// unless an invalidation arrived while it ran (what it read may predate the change).
    /// </summary>
    private Task<TValue> LoadOnceAsync<TKey, TValue>(SharedLoads<TKey, TValue> loads, TKey key, Func<TKey, Task<TValue>> query,
        Action<TKey, TValue> cache, CancellationToken cancellationToken) where TKey : notnull =>
        loads.LoadAsync(key, async k =>
        {
            var generation = Volatile.Read(ref _generation);
            var value = await query(k);
            lock (_writes)
            {
                if (_generation == generation)
                {
                    cache(k, value);
                }
            }

            return value;
        }, cancellationToken);

    /// <summary>Completes once change notifications are live (and the cache was emptied of anything older).</summary>
    internal Task SubscribedAsync()
    {
        EnsureSubscribed();
        return _subscription!;
    }

    private void EnsureSubscribed()
    {
        if (_subscription is null)
        {
            // Lazily, so constructing the directory never blocks on Redis; a failed subscription is retried on next use.
            lock (_keys)
            {
                _subscription ??= SubscribeAsync();
            }
        }
        else if (_subscription.IsFaulted)
        {
            lock (_keys)
            {
                if (_subscription.IsFaulted)
                {
                    _subscription = SubscribeAsync();
                }
            }
        }
    }

    private async Task SubscribeAsync()
    {
        try
        {
            var database = _redis.GetDatabase();
            await database.Multiplexer.GetSubscriber().SubscribeAsync(
                StackExchange.Redis.RedisChannel.Literal(TenancyChannels.Changes),
                (_, message) => Invalidate(Guid.TryParse(message.ToString(), out var id) ? id : null));
            // Anything changed before the subscription was live would be missed: start clean.
            Invalidate(null);
        }
        catch (Exception ex)
        {
            LogSubscribeFailed(_logger, ex.Message);
            throw;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Subscribing to tenancy changes failed ({Reason}); cached keys and tenants expire after the cache TTL instead")]
    private static partial void LogSubscribeFailed(ILogger logger, string reason);

    private sealed record Cached<T>(T Value, DateTimeOffset ValidUntil);
}

/// <summary>A key row as the request path needs it.</summary>
internal sealed record StoredKey(Guid Id, Guid TenantId, byte[] Salt, byte[] Hash, DateTimeOffset? ExpiresAt, DateTimeOffset? RevokedAt)
{
    /// <summary>The last caller context built for this key (reused while its tenant and budget are the same objects).</summary>
    public TenantContext? Context { get; set; }
}
