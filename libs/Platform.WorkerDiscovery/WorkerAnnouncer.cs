using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Platform.WorkerDiscovery;

/// <summary>
/// Runs in a model-worker replica: once its server listens, announces the replica's addresses in Redis and renews them every
/// <see cref="WorkerDiscoveryOptions.HeartbeatInterval"/>; withdraws them as soon as the host is told to stop, while the server still serves, so callers move on before it stops.
/// A Redis outage only delays the next heartbeat: callers keep their last known list meanwhile.
/// </summary>
public sealed partial class WorkerAnnouncer(
    Microsoft.AspNetCore.Hosting.Server.IServer server,
    IHostApplicationLifetime lifetime,
    IConnectionMultiplexer redis,
    IConfiguration configuration,
    IOptions<WorkerDiscoveryOptions> options,
    TimeProvider timeProvider,
    ILogger<WorkerAnnouncer> logger) : BackgroundService
{
    private readonly WorkerDiscoveryOptions _options = options.Value;
    private WorkerEndpoint? _self;

    /// <summary>This replica's announcement, once the server listens.</summary>
    public WorkerEndpoint? Self => _self;

    /// <summary>The replica's instance id: <c>service.instance.id</c> from <c>OTEL_RESOURCE_ATTRIBUTES</c>, else host-pid.</summary>
    public static string InstanceIdFrom(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        foreach (var pair in (configuration["OTEL_RESOURCE_ATTRIBUTES"] ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = pair.Split('=', 2);
            if (parts.Length == 2 && parts[0].Trim() == "service.instance.id")
            {
                return parts[1].Trim();
            }
        }

        return string.Create(CultureInfo.InvariantCulture, $"{Environment.MachineName}-{Environment.ProcessId}");
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Heartbeats end when the host is told to stop, not when hosted services stop: the server keeps serving through
        // the shutdown drain (ServiceDefaults' Shutdown:DrainDelay), and callers should leave it during that time.
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, lifetime.ApplicationStopping);
        if (!await WaitForStartedAsync(stopping.Token).ConfigureAwait(false))
        {
            return;
        }

        _self = Describe();
        LogAnnouncing(logger, _self.InstanceId, _self.Address, _self.GrpcAddress);
        var payload = JsonSerializer.Serialize(_self);
        using var timer = new PeriodicTimer(_options.HeartbeatInterval, timeProvider);
        try
        {
            do
            {
                try
                {
                    await BeatAsync(redis.GetDatabase(), _options, _self.InstanceId, payload, timeProvider.GetUtcNow())
                        .WaitAsync(stopping.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException)
                {
                    LogHeartbeatFailed(logger, ex.Message);
                }
            }
            while (await timer.WaitForNextTickAsync(stopping.Token).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Stopping: withdraw below.
        }

        await WithdrawAsync(_self, stoppingToken).ConfigureAwait(false);
    }

    private async Task WithdrawAsync(WorkerEndpoint self, CancellationToken cancellationToken)
    {
        try
        {
            var db = redis.GetDatabase();
            await db.SortedSetRemoveAsync(_options.HeartbeatsKey, self.InstanceId).WaitAsync(cancellationToken).ConfigureAwait(false);
            await db.HashDeleteAsync(_options.EndpointsKey, self.InstanceId).WaitAsync(cancellationToken).ConfigureAwait(false);
            LogWithdrawn(logger, self.InstanceId);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or OperationCanceledException)
        {
            // Callers drop it after the time to live instead.
            LogHeartbeatFailed(logger, ex.Message);
        }
    }

    /// <summary>
    /// One heartbeat: the announcement and its time, in one script. <c>allow-oom</c>: Platform's Redis evicts nothing, and
    /// at its maxmemory it refuses plain writes; a heartbeat overwrites what is there (it does not grow the data), and
    /// without it every replica would expire from the directory while Redis is full, so InferenceApi would blame missing
    /// workers and need a heartbeat round to find them again once memory is freed.
    /// </summary>
    internal static Task BeatAsync(IDatabase db, WorkerDiscoveryOptions options, string instanceId, string payload, DateTimeOffset now) =>
        db.ScriptEvaluateAsync(HeartbeatScript,
            [options.EndpointsKey, options.HeartbeatsKey],
            [instanceId, payload, now.ToUnixTimeMilliseconds()]);

    private const string HeartbeatScript = """
        #!lua flags=allow-oom
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
        return 1
        """;

    private async Task<bool> WaitForStartedAsync(CancellationToken stoppingToken)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var onStarted = lifetime.ApplicationStarted.Register(() => started.TrySetResult());
        using var onStopping = stoppingToken.Register(() => started.TrySetCanceled(stoppingToken));
        try
        {
            await started.Task.ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private WorkerEndpoint Describe()
    {
        var bound = server.Features.Get<IServerAddressesFeature>()?.Addresses.Select(a => new Uri(a)).ToList() ?? [];
        if (bound.Count == 0)
        {
            throw new InvalidOperationException("The worker's server reports no bound addresses to announce.");
        }

        // GRPC_PORT names the HTTP/2-only listener when the worker serves gRPC on its own port. The HTTP endpoint is the one
        // the host was told to listen on (ASPNETCORE_URLS/urls), not a private listener the server added for itself.
        var grpcPort = int.TryParse(configuration["GRPC_PORT"], NumberStyles.None, CultureInfo.InvariantCulture, out var p) ? p : (int?)null;
        var configured = (configuration["urls"] ?? configuration["ASPNETCORE_URLS"] ?? string.Empty)
            .Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(u => Uri.TryCreate(u.Replace("://+", "://any", StringComparison.Ordinal).Replace("://*", "://any", StringComparison.Ordinal), UriKind.Absolute, out var uri) ? uri.Port : -1)
            .Where(port => port > 0 && port != grpcPort)
            .ToHashSet();
        var http = bound.FirstOrDefault(u => configured.Contains(u.Port)) ?? bound.FirstOrDefault(u => u.Port != grpcPort) ?? bound[0];
        var grpc = grpcPort is null ? null : bound.FirstOrDefault(u => u.Port == grpcPort);
        return new WorkerEndpoint(InstanceIdFrom(configuration), Advertise(http), grpc is null ? null : Advertise(grpc), timeProvider.GetUtcNow());
    }

    private Uri Advertise(Uri bound)
    {
        var host = _options.AdvertiseHost
            ?? (configuration["POD_IP"] is { Length: > 0 } podIp ? podIp : null)
            ?? (bound.Host is "+" or "*" or "[::]" or "0.0.0.0" ? "localhost" : bound.Host);
        return new UriBuilder(bound.Scheme, host, bound.Port, "/").Uri;
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Announcing worker {InstanceId} at {Address} (gRPC {GrpcAddress})")]
    private static partial void LogAnnouncing(ILogger logger, string instanceId, Uri address, Uri? grpcAddress);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Worker heartbeat to Redis failed; callers keep the last announcement until it expires: {Reason}")]
    private static partial void LogHeartbeatFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "Withdrew worker {InstanceId}")]
    private static partial void LogWithdrawn(ILogger logger, string instanceId);
}
