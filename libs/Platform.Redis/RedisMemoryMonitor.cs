using System.Diagnostics.Metrics;
using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Platform.Redis;

/// <summary>Settings of <see cref="RedisMemoryMonitor"/> (configuration section <c>RedisMemory</c>).</summary>
public sealed class RedisMemoryOptions
{
    /// <summary>Configuration section.</summary>
    public const string SectionName = "RedisMemory";

    /// <summary>How often the server's memory is read (one <c>INFO memory</c>).</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(15);
}

/// <summary>
/// Reads Redis's memory use and its <c>maxmemory</c> bound and exports both (meter <see cref="MeterName"/>):
/// Platform's Redis evicts nothing (records, counters and buckets are data), so a full Redis refuses writes and every
/// inference is answered 503 until the usage writer has moved records out. The alerts watch the ratio before that.
/// </summary>
public sealed partial class RedisMemoryMonitor : BackgroundService
{
    /// <summary>Meter name (collected by ServiceDefaults through the <c>Platform.</c> prefix).</summary>
    public const string MeterName = "Platform.Redis";

    private readonly IConnectionMultiplexer _redis;
    private readonly TimeProvider _time;
    private readonly RedisMemoryOptions _options;
    private readonly ILogger<RedisMemoryMonitor> _logger;
    private long _used = -1;
    private long _limit = -1;

    /// <summary>Creates the monitor and its instruments.</summary>
    public RedisMemoryMonitor(IConnectionMultiplexer redis, IMeterFactory meterFactory, TimeProvider time, IOptions<RedisMemoryOptions> options,
        ILogger<RedisMemoryMonitor> logger)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        ArgumentNullException.ThrowIfNull(options);
        _redis = redis;
        _time = time;
        _options = options.Value;
        _logger = logger;
        var meter = meterFactory.Create(MeterName);
        meter.CreateObservableGauge("platform.redis.memory.used", () => Observe(ref _used), "By",
            "Memory Redis uses for its data (used_memory), as of the last read.");
        meter.CreateObservableGauge("platform.redis.memory.limit", () => Observe(ref _limit), "By",
            "Redis's maxmemory; absent when the server has no bound.");
    }

    /// <summary>The last reading: used bytes and the bound (null when unbounded), or null before the first read.</summary>
    public (long Used, long? Limit)? Last =>
        Interlocked.Read(ref _used) is var used and >= 0 ? (used, Interlocked.Read(ref _limit) is var limit and > 0 ? limit : null) : null;

    /// <summary>Reads the server's memory once.</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        var info = (string?)await _redis.GetDatabase().ScriptEvaluateAsync(InfoMemory).WaitAsync(cancellationToken).ConfigureAwait(false) ?? string.Empty;
        var memory = info.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(':', 2))
            .Where(pair => pair.Length == 2)
            .ToDictionary(pair => pair[0], pair => pair[1], StringComparer.Ordinal);
        Interlocked.Exchange(ref _used, Read(memory, "used_memory"));
        Interlocked.Exchange(ref _limit, Read(memory, "maxmemory"));
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_options.Interval, _time);
        do
        {
            try
            {
                await RefreshAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                // The connection's own events say Redis is away; the gauges keep their last reading meanwhile.
                LogReadFailed(_logger, ex.Message);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    // INFO through a script: StackExchange.Redis sends INFO itself only on connections in admin mode, which would also
    // open FLUSHALL and CONFIG to every caller of the services' connection. no-writes: it runs when Redis is full too.
    private const string InfoMemory = """
        #!lua flags=no-writes
        return redis.call('INFO', 'memory')
        """;

    private static long Read(Dictionary<string, string> memory, string field) =>
        memory.TryGetValue(field, out var value) && long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var bytes)
            ? bytes
            : throw new RedisException($"INFO memory has no numeric {field}");

    private static IEnumerable<Measurement<long>> Observe(ref long field)
    {
        var value = Interlocked.Read(ref field);
        return value > 0 ? [new Measurement<long>(value)] : [];
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Reading Redis's memory failed: {Reason}")]
    private static partial void LogReadFailed(ILogger logger, string reason);
}
