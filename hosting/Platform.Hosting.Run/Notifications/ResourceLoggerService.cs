using System.Runtime.CompilerServices;
using System.Threading.Channels;

namespace Platform.Hosting;

/// <summary>One line of a resource's console output.</summary>
/// <param name="Sequence">Increasing per application; lets followers resume.</param>
/// <param name="Resource">Resource name.</param>
/// <param name="InstanceId">Replica instance id (e.g. <c>model-worker-1</c>).</param>
/// <param name="Timestamp">When the line was read.</param>
/// <param name="Text">The line.</param>
/// <param name="IsError">True for standard error.</param>
public sealed record LogLine(long Sequence, string Resource, string InstanceId, DateTimeOffset Timestamp, string Text, bool IsError);

/// <summary>Keeps the last lines of every resource's console output (bounded) and lets callers follow it.</summary>
public sealed class ResourceLoggerService(TimeProvider timeProvider, int capacityPerResource = 5_000)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Queue<LogLine>> _lines = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<(string? Resource, Channel<LogLine> Channel)> _followers = [];
    private long _sequence;

    /// <summary>Records a line.</summary>
    public void Write(string resource, string instanceId, string text, bool isError)
    {
        LogLine line;
        (string?, Channel<LogLine>)[] followers;
        lock (_gate)
        {
            line = new LogLine(++_sequence, resource, instanceId, timeProvider.GetUtcNow(), text, isError);
            if (!_lines.TryGetValue(resource, out var queue))
            {
                _lines[resource] = queue = new Queue<LogLine>();
            }

            queue.Enqueue(line);
            while (queue.Count > capacityPerResource)
            {
                queue.Dequeue();
            }

            followers = [.. _followers];
        }

        foreach (var (r, channel) in followers)
        {
            if (r is null || string.Equals(r, resource, StringComparison.OrdinalIgnoreCase))
            {
                channel.Writer.TryWrite(line);
            }
        }
    }

    /// <summary>The last <paramref name="count"/> lines of a resource.</summary>
    public IReadOnlyList<LogLine> GetLines(string resource, int count = int.MaxValue)
    {
        lock (_gate)
        {
            return _lines.TryGetValue(resource, out var queue) ? queue.Skip(Math.Max(0, queue.Count - count)).ToList() : [];
        }
    }

    /// <summary>Lines already kept, then new ones as they arrive (all resources when <paramref name="resource"/> is null).</summary>
    public async IAsyncEnumerable<LogLine> FollowAsync(string? resource, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var channel = Channel.CreateBounded<LogLine>(new BoundedChannelOptions(20_000) { FullMode = BoundedChannelFullMode.DropOldest });
        List<LogLine> backlog;
        lock (_gate)
        {
            backlog = resource is null
                ? _lines.Values.SelectMany(q => q).OrderBy(l => l.Sequence).ToList()
                : GetLinesUnlocked(resource);
            _followers.Add((resource, channel));
        }

        try
        {
            foreach (var line in backlog)
            {
                yield return line;
            }

            await foreach (var line in channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                yield return line;
            }
        }
        finally
        {
            lock (_gate)
            {
                _followers.RemoveAll(f => f.Channel == channel);
            }
        }
    }

    private List<LogLine> GetLinesUnlocked(string resource) =>
        _lines.TryGetValue(resource, out var queue) ? [.. queue] : [];
}
