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

    /// <summary>Polls <paramref name="condition"/> every 100 ms until it holds; throws <see cref="TimeoutException"/> naming <paramref name="what"/> after <paramref name="timeout"/>.</summary>
    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(condition);
        return UntilAsync(() => Task.FromResult(condition()), timeout, what, cancellationToken);
    }
}
