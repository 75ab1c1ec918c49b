using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.Options;
using Platform.Tenancy;
using StackExchange.Redis;

namespace Platform.InferenceApi.Tenancy;

/// <summary>Limits on failed authentications (configuration section <c>InferenceApi:KeyGuessing</c>).</summary>
public sealed class KeyGuessingOptions
{
    /// <summary>Configuration section.</summary>
    public const string SectionName = "InferenceApi:KeyGuessing";

    /// <summary>Failed authentications one client address may make per minute window; later attempts get 429.</summary>
    public int FailuresPerAddressPerMinute { get; set; } = 20;

    /// <summary>
    /// Failed authentications naming one key prefix (<c>pk_&lt;prefix&gt;_…</c>) per minute window, whatever their addresses:
    /// bounds a guess at one key's secret spread over many addresses.
    /// </summary>
    public int FailuresPerKeyPrefixPerMinute { get; set; } = 20;
}

/// <summary>What <see cref="KeyGuessingLimiter"/> decided.</summary>
/// <param name="Limit">"address" or "key_prefix": which limit was reached.</param>
/// <param name="RetryAfter">Until the window ends.</param>
public sealed record GuessingRefusal(string Limit, TimeSpan RetryAfter);

/// <summary>
/// Bounds how fast anyone can guess API keys. Failures are counted in Redis per client address and per key prefix in
/// fixed one-minute windows, so every InferenceApi replica sees the same counts; once a count passes its limit, the
/// replica that saw it refuses that address (or prefix) with 429 until the window ends, without verifying any key, so
/// a correct guess after the limit is not served either, and tells the other replicas through Redis pub/sub (each also
/// learns it at its next failure for that subject). A valid key costs nothing here (a dictionary lookup, no Redis). When Redis is unreachable the limiter lets attempts through (a key has
/// 256 bits of entropy: the limiter is a second line, and serving without Redis fails closed elsewhere anyway).
/// </summary>
public sealed partial class KeyGuessingLimiter
{
    private const string KeyPrefix = "platform:auth-failures:";
    private const string BlockedChannel = "platform:auth-failures:blocked";
    private static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    private readonly IConnectionMultiplexer _redis;
    private readonly TimeProvider _time;
    private readonly IOptionsMonitor<KeyGuessingOptions> _options;
    private readonly ILogger<KeyGuessingLimiter> _logger;
    private readonly ConcurrentDictionary<string, DateTimeOffset> _blockedUntil = new(StringComparer.Ordinal);
    private readonly Counter<long> _failures;
    private readonly Lock _subscribing = new();
    private Task? _subscription;

    /// <summary>Creates the limiter and its counter (<c>platform.auth.failures</c>).</summary>
    public KeyGuessingLimiter(IConnectionMultiplexer redis, TimeProvider time, IOptionsMonitor<KeyGuessingOptions> options,
        IMeterFactory meterFactory, ILogger<KeyGuessingLimiter> logger)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        _redis = redis;
        _time = time;
        _options = options;
        _logger = logger;
        _failures = meterFactory.Create(TenancyTelemetry.MeterName).CreateCounter<long>("platform.auth.failures",
            description: "Failed API key authentications: outcome rejected (401) or throttled (429, by the limit reached)");
    }

    /// <summary>Refusal when <paramref name="address"/> or the prefix of <paramref name="presentedKey"/> is over its limit in this window; null otherwise.</summary>
    public GuessingRefusal? Check(IPAddress? address, string? presentedKey)
    {
        EnsureSubscribed();
        if (_blockedUntil.IsEmpty)
        {
            // Nobody is blocked (the usual case): no prefix or subject strings to build for every request.
            return null;
        }

        var prefix = ApiKeys.TryParse(presentedKey, out var parsed, out _) ? parsed : null;

        var now = _time.GetUtcNow();
        foreach (var (limit, id) in Subjects(address, prefix))
        {
            if (_blockedUntil.TryGetValue(id, out var until))
            {
                if (until > now)
                {
                    _failures.Add(1, new("outcome", "throttled"), new("limit", limit));
                    return new GuessingRefusal(limit, until - now);
                }

                _blockedUntil.TryRemove(new KeyValuePair<string, DateTimeOffset>(id, until));
            }
        }

        return null;
    }

    /// <summary>
    /// Counts a failed authentication; a refusal when it took <paramref name="address"/> or <paramref name="prefix"/> past
    /// its limit (the caller answers 429 instead of 401), null when the caller answers 401.
    /// </summary>
    public async Task<GuessingRefusal?> FailedAsync(IPAddress? address, string? prefix)
    {
        var now = _time.GetUtcNow();
        var window = now.ToUnixTimeSeconds() / (long)Window.TotalSeconds;
        var windowEnds = DateTimeOffset.FromUnixTimeSeconds((window + 1) * (long)Window.TotalSeconds);
        var options = _options.CurrentValue;
        var subjects = Subjects(address, prefix).ToList();
        long[] counts;
        try
        {
            var db = _redis.GetDatabase();
            var batch = db.CreateBatch();
            var increments = subjects.Select(s =>
            {
                var key = (RedisKey)string.Create(CultureInfo.InvariantCulture, $"{KeyPrefix}{s.Id}:{window}");
                var count = batch.StringIncrementAsync(key);
                // Two windows: a replica whose clock is a little behind still finds the count.
                _ = batch.KeyExpireAsync(key, Window * 2, ExpireWhen.HasNoExpiry);
                return count;
            }).ToList();
            batch.Execute();
            counts = await Task.WhenAll(increments);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            LogUncounted(_logger, ex.Message);
            _failures.Add(1, new("outcome", "rejected"), new("limit", "uncounted"));
            return null;
        }

        GuessingRefusal? refusal = null;
        for (var i = 0; i < subjects.Count; i++)
        {
            var (limit, id) = subjects[i];
            var allowed = limit == "address" ? options.FailuresPerAddressPerMinute : options.FailuresPerKeyPrefixPerMinute;
            if (counts[i] > allowed)
            {
                _blockedUntil[id] = windowEnds;
                if (counts[i] == allowed + 1)
                {
                    // The other replicas learn it at once, so a correct guess sent to one of them is not served either.
                    _ = Publish(id, windowEnds);
                }

                if (refusal is null)
                {
                    refusal = new GuessingRefusal(limit, windowEnds - now);
                    if (counts[i] == allowed + 1)
                    {
                        LogLimitReached(_logger, limit, limit == "address" ? address?.ToString() ?? "unknown" : prefix ?? "", allowed);
                    }
                }
            }
        }

        _failures.Add(1, new("outcome", refusal is null ? "rejected" : "throttled"), new("limit", refusal?.Limit ?? "none"));
        return refusal;
    }

    private async Task Publish(string id, DateTimeOffset until)
    {
        try
        {
            await _redis.GetSubscriber().PublishAsync(RedisChannel.Literal(BlockedChannel),
                string.Create(CultureInfo.InvariantCulture, $"{until.ToUnixTimeSeconds()} {id}"));
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // The other replicas still learn it at their next failure for this subject.
            LogUncounted(_logger, ex.Message);
        }
    }

    private void EnsureSubscribed()
    {
        if (_subscription is { IsFaulted: false })
        {
            return;
        }

        lock (_subscribing)
        {
            // Lazily and without waiting: a request never blocks on Redis here; a failed subscription is retried on next use.
            if (_subscription is null or { IsFaulted: true })
            {
                _subscription = _redis.GetSubscriber().SubscribeAsync(RedisChannel.Literal(BlockedChannel), (_, message) =>
                {
                    var text = message.ToString();
                    var space = text.IndexOf(' ', StringComparison.Ordinal);
                    if (space > 0 && long.TryParse(text.AsSpan(0, space), NumberStyles.None, CultureInfo.InvariantCulture, out var until))
                    {
                        _blockedUntil[text[(space + 1)..]] = DateTimeOffset.FromUnixTimeSeconds(until);
                    }
                });
            }
        }
    }

    private static IEnumerable<(string Limit, string Id)> Subjects(IPAddress? address, string? prefix)
    {
        if (address is not null)
        {
            yield return ("address", "a:" + (address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address));
        }

        if (prefix is { Length: > 0 })
        {
            yield return ("key_prefix", "p:" + prefix);
        }
    }

    [LoggerMessage(EventId = 44, Level = LogLevel.Warning,
        Message = "Failed API key authentications reached the limit of {Allowed} a minute for {Limit} {Subject}: further attempts get 429 until the window ends")]
    private static partial void LogLimitReached(ILogger logger, string limit, string subject, int allowed);

    [LoggerMessage(EventId = 45, Level = LogLevel.Warning, Message = "A failed authentication could not be counted (Redis unavailable); answered 401 without the guessing limit: {Reason}")]
    private static partial void LogUncounted(ILogger logger, string reason);
}
