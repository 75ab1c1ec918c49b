using System.Collections.Concurrent;

namespace Platform.Tenancy.Enforcement;

/// <summary>
/// Concurrent cache misses of one key share one load: without it, a hot key whose entry expires (or is dropped by a
/// change notification) under load sends one query per waiting request to Postgres at once, each on a connection of its
/// own — tens per replica every cache TTL, which a scaled-out deployment multiplies into the server's connection limit.
/// </summary>
internal sealed class SharedLoads<TKey, TValue>(IEqualityComparer<TKey>? comparer = null) where TKey : notnull
{
    private readonly ConcurrentDictionary<TKey, Task<TValue>> _inFlight = new(comparer);

    /// <summary>
    /// The running load of <paramref name="key"/>, or a new one. The load itself runs without the caller's token, so
    /// one caller giving up does not fail the others; each caller stops waiting on its own token.
    /// </summary>
    public Task<TValue> LoadAsync(TKey key, Func<TKey, Task<TValue>> load, CancellationToken cancellationToken)
    {
        if (!_inFlight.TryGetValue(key, out var running))
        {
            var started = new TaskCompletionSource<TValue>(TaskCreationOptions.RunContinuationsAsynchronously);
            running = _inFlight.GetOrAdd(key, started.Task);
            if (ReferenceEquals(running, started.Task))
            {
                _ = RunAsync(key, load, started);
            }
        }

        return running.WaitAsync(cancellationToken);
    }

    /// <summary>Forgets every running load: callers from now on start their own (their data may have changed).</summary>
    public void Forget() => _inFlight.Clear();

    private async Task RunAsync(TKey key, Func<TKey, Task<TValue>> load, TaskCompletionSource<TValue> completion)
    {
        try
        {
            completion.SetResult(await load(key).ConfigureAwait(false));
        }
        catch (Exception ex)
        {
            completion.SetException(ex);
        }
        finally
        {
            // Only this load's own entry: after Forget another load of the key may already run.
            _inFlight.TryRemove(KeyValuePair.Create(key, completion.Task));
        }
    }
}
