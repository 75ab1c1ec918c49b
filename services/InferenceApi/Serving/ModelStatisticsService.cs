using System.Globalization;
using Platform.Inference.Protocol.Wire;
using Platform.Inference.Routing;

namespace Platform.InferenceApi.Serving;

/// <summary>A count and its cumulative nanoseconds (Triton's <c>StatisticDuration</c>).</summary>
public sealed record StatisticDuration(ulong Count, ulong Ns)
{
    /// <summary>Nothing counted.</summary>
    public static StatisticDuration Zero { get; } = new(0, 0);

    /// <summary>Sum of two totals.</summary>
    public StatisticDuration Plus(Inference.Protocol.Wire.Duration? other) => other is null ? this : new(Count + other.Count, Ns + other.Ns);
}

/// <summary>Triton's <c>InferStatistics</c>.</summary>
public sealed record InferStatistics(
    StatisticDuration Success, StatisticDuration Fail, StatisticDuration Queue, StatisticDuration ComputeInput,
    StatisticDuration ComputeInfer, StatisticDuration ComputeOutput, StatisticDuration CacheHit, StatisticDuration CacheMiss);

/// <summary>Triton's <c>InferBatchStatistics</c>.</summary>
public sealed record InferBatchStatistics(ulong BatchSize, StatisticDuration ComputeInput, StatisticDuration ComputeInfer, StatisticDuration ComputeOutput);

/// <summary>Triton's <c>ModelStatistics</c> of one version, summed over the model workers, plus the current queue depth.</summary>
public sealed record ModelVersionStatistics(
    string Name,
    string Version,
    ulong LastInference,
    ulong InferenceCount,
    ulong ExecutionCount,
    InferStatistics InferenceStats,
    IReadOnlyList<InferBatchStatistics> BatchStats,
    IReadOnlyList<object> MemoryUsage,
    ulong QueueDepth);

/// <summary><c>GET /v2/models[/{m}[/versions/{v}]]/stats</c>.</summary>
public sealed record ModelStatisticsList(IReadOnlyList<ModelVersionStatistics> ModelStats);

/// <summary>
/// Triton's statistics extension over the whole platform: every model worker is asked for its per-version totals (over
/// the gRPC hop) and they are summed, with the response cache's hits and misses (which only InferenceApi sees) from
/// Redis. Versions are the active ones; totals are since each worker loaded the version, so a restarted worker starts
/// from zero.
/// </summary>
public sealed partial class ModelStatisticsService(
    ServedModelCatalog catalog,
    WorkerClient workers,
    InferenceStatisticsStore store,
    ILogger<ModelStatisticsService> logger)
{
    /// <summary>Statistics of <paramref name="model"/> (null: every model <paramref name="allowed"/> lets through) at <paramref name="version"/> (null: every active version).</summary>
    /// <returns>The statistics, or null when the model (version) is not active.</returns>
    public async Task<ModelStatisticsList?> GetAsync(string? model, long? version, Func<string, bool> allowed, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(allowed);
        IEnumerable<ServedModel> served = model is null
            ? catalog.AllActive().Where(m => allowed(m.Name))
            : catalog.ActiveVersions(model).Where(m => version is null || m.Version == version);
        var targets = served.OrderBy(m => m.Name, StringComparer.Ordinal).ThenBy(m => m.Version).ToList();
        if (model is not null && targets.Count == 0)
        {
            return null;
        }

        var replicas = await workers.GetStatisticsAsync(model ?? string.Empty, version ?? 0, cancellationToken);
        foreach (var unreachable in replicas.Where(r => r.Statistics is null))
        {
            LogReplicaMissing(logger, unreachable.Replica.GrpcAddress.Authority, unreachable.Error ?? "no answer");
        }

        var reported = replicas.Where(r => r.Statistics is not null).SelectMany(r => r.Statistics!.Models).ToLookup(s => (s.Model, s.Version));
        var result = new List<ModelVersionStatistics>(targets.Count);
        foreach (var target in targets)
        {
            var cache = await store.GetAsync(target.Name, target.Version, cancellationToken);
            result.Add(Sum(target, reported[(target.Name, target.Version)], cache));
        }

        return new ModelStatisticsList(result);
    }

    private static ModelVersionStatistics Sum(ServedModel model, IEnumerable<VersionStatistics> perReplica, CacheStatistics cache)
    {
        ulong last = 0, inferences = 0, executions = 0, depth = 0;
        StatisticDuration success = StatisticDuration.Zero, fail = success, queue = success, input = success, infer = success, output = success;
        var batches = new SortedDictionary<ulong, (StatisticDuration Input, StatisticDuration Infer, StatisticDuration Output)>();
        foreach (var replica in perReplica)
        {
            last = Math.Max(last, replica.LastInferenceUnixMs);
            inferences += replica.InferenceCount;
            executions += replica.ExecutionCount;
            depth += (ulong)Math.Max(0, replica.QueueDepth);
            success = success.Plus(replica.Success);
            fail = fail.Plus(replica.Fail);
            queue = queue.Plus(replica.Queue);
            input = input.Plus(replica.ComputeInput);
            infer = infer.Plus(replica.ComputeInfer);
            output = output.Plus(replica.ComputeOutput);
            foreach (var batch in replica.Batches)
            {
                var sum = batches.GetValueOrDefault(batch.BatchSize, (StatisticDuration.Zero, StatisticDuration.Zero, StatisticDuration.Zero));
                batches[batch.BatchSize] = (sum.Item1.Plus(batch.ComputeInput), sum.Item2.Plus(batch.ComputeInfer), sum.Item3.Plus(batch.ComputeOutput));
            }
        }

        return new ModelVersionStatistics(
            model.Name,
            model.Version.ToString(CultureInfo.InvariantCulture),
            last,
            inferences,
            executions,
            new InferStatistics(success, fail, queue, input, infer, output,
                new StatisticDuration(cache.HitCount, cache.HitNanoseconds), new StatisticDuration(cache.MissCount, cache.MissNanoseconds)),
            [.. batches.Select(b => new InferBatchStatistics(b.Key, b.Value.Input, b.Value.Infer, b.Value.Output))],
            [],
            depth);
    }

    [LoggerMessage(EventId = 70, Level = LogLevel.Warning, Message = "Statistics of worker {Replica} left out (unreachable: {Reason})")]
    private static partial void LogReplicaMissing(ILogger logger, string replica, string reason);
}
