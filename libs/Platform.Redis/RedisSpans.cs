using System.Diagnostics;

namespace Platform.Redis;

/// <summary>
/// Client spans for Platform's Redis calls on request paths (usage ledger, response cache, feature store). Aspire's own
/// Redis tracing is off (<see cref="RedisServiceCollectionExtensions.AddPlatformRedisClient"/>): it records commands
/// through StackExchange.Redis's profiler and holds every span that issued one, with each command and its arguments,
/// until a drain every 10 s. Under load that kept seconds of requests alive: InferenceApi promoted ~8 MB per gen0
/// collection and its pauses grew to 20–40 ms, every in-flight request waiting them out. These spans start and end
/// around the call and hold nothing afterwards.
/// </summary>
public static class RedisSpans
{
    /// <summary>The activity source (ServiceDefaults traces every <c>Platform.*</c> source).</summary>
    public const string SourceName = "Platform.Redis";

    private static readonly ActivitySource Source = new(SourceName);

    /// <summary>
    /// Starts a client span named after the command; null when nothing records it (no listener, or the trace is not
    /// sampled). Dispose it when the reply is in (<see cref="TraceAsync"/> does both).
    /// </summary>
    /// <param name="command">The Redis command (<c>db.operation.name</c>), e.g. <c>GET</c>, <c>LPUSH</c>, <c>EVALSHA</c>.</param>
    /// <param name="purpose">What Platform uses it for (<c>platform.redis.purpose</c>), e.g. <c>ledger.admit</c>.</param>
    /// <param name="batchSize">Requests that share the command (<c>db.operation.batch.size</c>, set when more than one).</param>
    public static Activity? Start(string command, string purpose, int batchSize = 1)
    {
        var activity = Source.StartActivity(command, ActivityKind.Client);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("db.system.name", "redis");
            activity.SetTag("db.operation.name", command);
            activity.SetTag("platform.redis.purpose", purpose);
            if (batchSize > 1)
            {
                activity.SetTag("db.operation.batch.size", batchSize);
            }
        }

        return activity;
    }

    /// <summary>Runs one Redis call inside a span (<see cref="Start"/>), marked failed (<c>error.type</c>, status) when the call throws.</summary>
    /// <typeparam name="T">The call's reply.</typeparam>
    /// <param name="command">The Redis command.</param>
    /// <param name="purpose">What Platform uses it for.</param>
    /// <param name="batchSize">Requests that share the command.</param>
    /// <param name="call">Issues the command.</param>
    public static async Task<T> TraceAsync<T>(string command, string purpose, int batchSize, Func<Task<T>> call)
    {
        ArgumentNullException.ThrowIfNull(call);
        using var span = Start(command, purpose, batchSize);
        try
        {
            return await call();
        }
        catch (Exception ex) when (span is not null)
        {
            span.SetTag("error.type", ex.GetType().FullName);
            span.SetStatus(ActivityStatusCode.Error, ex.Message);
            throw;
        }
    }
}
