using System.Diagnostics;
using Platform.Coalescing;
using Platform.TestSupport;

namespace Platform.Libs.Tests;

public sealed class CoalescerTests
{
    // A send that records each call's items and holds it open until the test releases it.
    private sealed class GatedSend
    {
        private readonly List<(int[] Items, TaskCompletionSource Gate, string? Activity)> _calls = [];

        public IReadOnlyList<int[]> Calls
        {
            get
            {
                lock (_calls)
                {
                    return [.. _calls.Select(c => c.Items)];
                }
            }
        }

        public string? ActivityOf(int call)
        {
            lock (_calls)
            {
                return _calls[call].Activity;
            }
        }

        public async Task SendAsync(string key, IReadOnlyList<Coalescer<string, int, string>.Entry> batch)
        {
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_calls)
            {
                _calls.Add(([.. batch.Select(e => e.Item)], gate, Activity.Current?.DisplayName));
            }

            await gate.Task;
            foreach (var entry in batch)
            {
                if (entry.Item < 0)
                {
                    throw new InvalidOperationException($"item {entry.Item} refused");
                }

                entry.Completion.TrySetResult($"{key}:{entry.Item}");
            }
        }

        public void Release(int call)
        {
            lock (_calls)
            {
                _calls[call].Gate.SetResult();
            }
        }
    }

    [Fact]
    public async Task ALoneItemLeavesAtOnceAndAlone()
    {
        var send = new GatedSend();
        var coalescer = new Coalescer<string, int, string>(2, 8, send.SendAsync);

        var answer = coalescer.EnqueueAsync("m", 1);

        Assert.Equal(new[] { new[] { 1 } }, send.Calls);
        send.Release(0);
        Assert.Equal("m:1", await answer);
    }

    [Fact]
    public async Task ItemsArrivingWhileEverySlotIsBusyLeaveTogetherUpToTheLimitWhenACallReturns()
    {
        var send = new GatedSend();
        var coalescer = new Coalescer<string, int, string>(1, 3, send.SendAsync);

        var answers = Enumerable.Range(1, 5).Select(i => coalescer.EnqueueAsync("m", i)).ToArray();
        Assert.Equal(new[] { new[] { 1 } }, send.Calls);

        send.Release(0);
        await Waits.UntilAsync(() => send.Calls.Count == 2, TimeSpan.FromSeconds(10), "the second call", TestContext.Current.CancellationToken);
        Assert.Equal([2, 3, 4], send.Calls[1]);
        send.Release(1);
        await Waits.UntilAsync(() => send.Calls.Count == 3, TimeSpan.FromSeconds(10), "the third call", TestContext.Current.CancellationToken);
        Assert.Equal([5], send.Calls[2]);
        send.Release(2);

        Assert.Equal(["m:1", "m:2", "m:3", "m:4", "m:5"], await Task.WhenAll(answers));
    }

    [Fact]
    public async Task AFailedCallFailsItsOwnCallersOnlyAndTheLaneGoesOn()
    {
        var send = new GatedSend();
        var coalescer = new Coalescer<string, int, string>(1, 8, send.SendAsync);
        var first = coalescer.EnqueueAsync("m", 1);
        var failing = coalescer.EnqueueAsync("m", -2);
        var sharing = coalescer.EnqueueAsync("m", 3);

        send.Release(0);
        Assert.Equal("m:1", await first);
        await Waits.UntilAsync(() => send.Calls.Count == 2, TimeSpan.FromSeconds(10), "the shared call", TestContext.Current.CancellationToken);
        send.Release(1);
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => failing);
        Assert.Contains("-2", error.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<InvalidOperationException>(() => sharing);

        // The lane frees its slot after the failed call's callers see the error, so the next call may leave a moment later.
        var after = coalescer.EnqueueAsync("m", 4);
        await Waits.UntilAsync(() => send.Calls.Count == 3, TimeSpan.FromSeconds(10), "the call after the failure", TestContext.Current.CancellationToken);
        send.Release(2);
        Assert.Equal("m:4", await after);
    }

    [Fact]
    public async Task LanesDoNotWaitForEachOther()
    {
        var send = new GatedSend();
        var coalescer = new Coalescer<string, int, string>(1, 8, send.SendAsync);
        var busy = coalescer.EnqueueAsync("a", 1);

        var other = coalescer.EnqueueAsync("b", 2);

        Assert.Equal(new[] { new[] { 1 }, new[] { 2 } }, send.Calls);
        send.Release(1);
        Assert.Equal("b:2", await other);
        Assert.False(busy.IsCompleted);
        send.Release(0);
        Assert.Equal("a:1", await busy);
    }

    [Fact]
    public async Task ASharedCallRunsInTheFirstCallersActivity()
    {
        var send = new GatedSend();
        var coalescer = new Coalescer<string, int, string>(1, 8, send.SendAsync);
        using var source = new ActivitySource("Platform.Libs.Tests.Coalescer");
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == source.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
        };
        ActivitySource.AddActivityListener(listener);
        // Each caller's activity runs until its answer comes, as a request's span does.
        var activities = new List<Activity>();
        Task<string> Enqueue(string caller, int item)
        {
            var previous = Activity.Current;
            activities.Add(source.StartActivity(caller)!);
            var answer = coalescer.EnqueueAsync("m", item);
            Activity.Current = previous;
            return answer;
        }

        var answers = new[] { Enqueue("first", 1), Enqueue("second", 2), Enqueue("third", 3) };
        send.Release(0);
        await Waits.UntilAsync(() => send.Calls.Count == 2, TimeSpan.FromSeconds(10), "the shared call", TestContext.Current.CancellationToken);
        send.Release(1);
        await Task.WhenAll(answers);
        activities.ForEach(a => a.Dispose());

        Assert.Equal("first", send.ActivityOf(0));
        // Dispatched by the first call's completion, yet it belongs to the first caller queued in it.
        Assert.Equal("second", send.ActivityOf(1));
    }

    [Theory]
    [InlineData(0, 8)]
    [InlineData(1, 0)]
    public void SettingsBelowOneAreRefused(int callsInFlight, int maxItems) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new Coalescer<string, int, string>(callsInFlight, maxItems, (_, _) => Task.CompletedTask));
}
