using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Platform.Hosting.ApplicationModel;

namespace Platform.Hosting;

/// <summary>
/// The current state of every resource, and a stream of changes (Aspire's <c>ResourceNotificationService</c>).
/// Waits fail fast: an unknown name or a terminal state throws at once instead of hanging.
/// </summary>
public sealed class ResourceNotificationService
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, ResourceSnapshot> _snapshots = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<Channel<ResourceSnapshot>> _watchers = [];
    private readonly List<string> _order = [];

    /// <summary>Raised after every change (used by waits).</summary>
    private event Action<ResourceSnapshot>? Changed;

    /// <summary>Publishes a new snapshot of a resource.</summary>
    public void Publish(ResourceSnapshot snapshot)
    {
        Channel<ResourceSnapshot>[] watchers;
        lock (_gate)
        {
            if (!_snapshots.ContainsKey(snapshot.Name))
            {
                _order.Add(snapshot.Name);
            }

            _snapshots[snapshot.Name] = snapshot;
            watchers = [.. _watchers];
        }

        foreach (var w in watchers)
        {
            w.Writer.TryWrite(snapshot);
        }

        Changed?.Invoke(snapshot);
    }

    /// <summary>The latest snapshot of every resource, in model order.</summary>
    public IReadOnlyList<ResourceSnapshot> GetAll()
    {
        lock (_gate)
        {
            return _order.Select(n => _snapshots[n]).ToList();
        }
    }

    /// <summary>The latest snapshot of a resource, or null when the name is unknown.</summary>
    public ResourceSnapshot? TryGet(string name)
    {
        lock (_gate)
        {
            return _snapshots.GetValueOrDefault(name);
        }
    }

    /// <summary>Every change from now on, starting with the current snapshots.</summary>
    public async IAsyncEnumerable<ResourceSnapshot> WatchAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var channel = Channel.CreateBounded<ResourceSnapshot>(new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.DropOldest });
        ResourceSnapshot[] current;
        lock (_gate)
        {
            current = [.. _order.Select(n => _snapshots[n])];
            _watchers.Add(channel);
        }

        try
        {
            foreach (var s in current)
            {
                yield return s;
            }

            await foreach (var s in channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                yield return s;
            }
        }
        finally
        {
            lock (_gate)
            {
                _watchers.Remove(channel);
            }
        }
    }

    /// <summary>Waits until <paramref name="predicate"/> holds for the resource's snapshot.</summary>
    /// <exception cref="DistributedApplicationException">The name is unknown, or the resource reached a terminal state first.</exception>
    public async Task<ResourceSnapshot> WaitForResourceAsync(string name, Func<ResourceSnapshot, bool> predicate,
        CancellationToken cancellationToken = default)
    {
        var tcs = new TaskCompletionSource<ResourceSnapshot>(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnChanged(ResourceSnapshot s)
        {
            if (!string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase))
            {
                return;
            }

            if (predicate(s))
            {
                tcs.TrySetResult(s);
            }
            else if (KnownResourceStates.IsTerminal(s.State))
            {
                tcs.TrySetException(new DistributedApplicationException(
                    $"Resource '{name}' is {s.State}{(s.ExitCode is { } code ? $" (exit code {code})" : string.Empty)}" +
                    $"{(s.Message is { } m ? $": {m}" : string.Empty)}; it will not reach the awaited state."));
            }
        }

        Changed += OnChanged;
        try
        {
            var current = TryGet(name) ?? throw new DistributedApplicationException(
                $"Unknown resource '{name}'. Known resources: {string.Join(", ", GetAll().Select(s => s.Name))}.");
            OnChanged(current);
            return await tcs.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Changed -= OnChanged;
        }
    }

    /// <summary>Waits until the resource is in <paramref name="state"/>.</summary>
    public Task<ResourceSnapshot> WaitForResourceAsync(string name, string state, CancellationToken cancellationToken = default) =>
        WaitForResourceAsync(name, s => s.State == state, cancellationToken);

    /// <summary>Waits until the resource is Running and Healthy (or Running, when it has no health checks).</summary>
    public Task<ResourceSnapshot> WaitForResourceHealthyAsync(string name, CancellationToken cancellationToken = default) =>
        WaitForResourceAsync(name, IsReady, cancellationToken);

    /// <summary>What <c>WaitFor</c> waits for.</summary>
    public static bool IsReady(ResourceSnapshot s) =>
        s.State == KnownResourceStates.Running && (!s.HasHealthChecks || s.Health == HealthStatus.Healthy);
}
