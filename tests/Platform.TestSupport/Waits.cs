namespace Platform.TestSupport;

/// <summary>The shared polling wait for conditions no notification announces (log lines, files, counters).</summary>
public static class Waits
{
    /// <summary>Polls <paramref name="condition"/> every 100 ms until it holds; throws <see cref="TimeoutException"/> naming <paramref name="what"/> after <paramref name="timeout"/>.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var started = TimeProvider.System.GetTimestamp();
        while (!await condition())
        {
            if (TimeProvider.System.GetElapsedTime(started) > timeout)
            {
                throw new TimeoutException($"{what}: not within {timeout.TotalSeconds:0} s");
            }

            await Task.Delay(100, cancellationToken);
        }
    }

    /// <summary>
    /// Polls <paramref name="probe"/> every 100 ms until <paramref name="done"/> holds for its value, and returns that value;
    /// throws <see cref="TimeoutException"/> naming <paramref name="what"/> after <paramref name="timeout"/>, with the last
    /// value (a collection item by item), so the failure shows what the wait saw instead of only that it ran out.
    /// </summary>
    public static async Task<T> UntilAsync<T>(Func<Task<T>> probe, Func<T, bool> done, TimeSpan timeout, string what, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(probe);
        ArgumentNullException.ThrowIfNull(done);
        var started = TimeProvider.System.GetTimestamp();
        while (true)
        {
            var value = await probe();
            if (done(value))
            {
                return value;
            }

            if (TimeProvider.System.GetElapsedTime(started) > timeout)
            {
                var last = value is System.Collections.IEnumerable items and not string ? "\n  " + string.Join("\n  ", items.Cast<object?>()) : $" {value}";
                throw new TimeoutException($"{what}: not within {timeout.TotalSeconds:0} s; last:{last}");
            }

            await Task.Delay(100, cancellationToken);
        }
    }

    /// <summary>Polls <paramref name="condition"/> every 100 ms until it holds; throws <see cref="TimeoutException"/> naming <paramref name="what"/> after <paramref name="timeout"/>.</summary>
    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(condition);
        return UntilAsync(() => Task.FromResult(condition()), timeout, what, cancellationToken);
    }
}
