using Microsoft.Extensions.Time.Testing;
using Platform.Inference.Routing;

namespace Platform.OpenInference.Tests;

public sealed class BalancerTests
{
    private static readonly Uri A = new("http://127.0.0.1:5001/");
    private static readonly Uri B = new("http://127.0.0.1:5002/");

    [Fact]
    public void PicksTheReplicaWithFewestRequestsInFlight()
    {
        var balancer = new ReplicaBalancer(new FakeTimeProvider(), TimeSpan.FromSeconds(5));
        using var first = balancer.Acquire([A, B])!;
        using var second = balancer.Acquire([A, B])!;
        Assert.NotEqual(first.Replica, second.Replica);
        var freed = second.Replica;
        second.Dispose();
        // first's replica has 1 in flight, the freed one 0: the next request goes to the freed one.
        using var third = balancer.Acquire([A, B])!;
        Assert.Equal(freed, third.Replica);
        using var fourth = balancer.Acquire([A, B])!;
        var counts = balancer.Snapshot().ToDictionary(s => s.Address, s => s.Outstanding);
        Assert.Equal(3, counts[A] + counts[B]);
        Assert.InRange(Math.Abs(counts[A] - counts[B]), 0, 1);
    }

    [Fact]
    public void IdleRequestsAlternate()
    {
        var balancer = new ReplicaBalancer(new FakeTimeProvider(), TimeSpan.FromSeconds(5));
        var picks = new List<Uri>();
        for (var i = 0; i < 10; i++)
        {
            using var lease = balancer.Acquire([A, B])!;
            picks.Add(lease.Replica);
        }

        Assert.Equal(5, picks.Count(p => p == A));
    }

    [Fact]
    public void PackingFillsTheFirstReplicaUpToTheThresholdThenSpreads()
    {
        var time = new FakeTimeProvider();
        var balancer = new ReplicaBalancer(time, TimeSpan.FromSeconds(5), packBelow: 3);
        // Light load: one request at a time always lands on the first replica (no rotation).
        for (var i = 0; i < 4; i++)
        {
            using var lease = balancer.Acquire([A, B])!;
            Assert.Equal(A, lease.Replica);
        }

        var held = Enumerable.Range(0, 5).Select(_ => balancer.Acquire([A, B])!).ToList();
        // A takes 3, then the next replica in order (B) is packed the same way.
        Assert.Equal([A, A, A, B, B], held.Select(l => l.Replica));
        held.Add(balancer.Acquire([A, B])!);
        var counts = balancer.Snapshot().ToDictionary(s => s.Address, s => s.Outstanding);
        Assert.Equal(6, counts[A] + counts[B]);
        Assert.InRange(counts[B], 2, 3);

        // A failed replica is not packed onto; neither is an excluded one.
        held.ForEach(l => l.Dispose());
        balancer.ReportFailure(A);
        using (var lease = balancer.Acquire([A, B])!)
        {
            Assert.Equal(B, lease.Replica);
        }

        time.Advance(TimeSpan.FromMilliseconds(5_001));
        using (var lease = balancer.Acquire([A, B], [A])!)
        {
            Assert.Equal(B, lease.Replica);
        }

        using (var lease = balancer.Acquire([A, B])!)
        {
            Assert.Equal(A, lease.Replica);
        }
    }

    [Fact]
    public void ExcludedReplicasAreSkippedAndNoneLeftGivesNull()
    {
        var balancer = new ReplicaBalancer(new FakeTimeProvider(), TimeSpan.FromSeconds(5));
        for (var i = 0; i < 4; i++)
        {
            using var lease = balancer.Acquire([A, B], [A])!;
            Assert.Equal(B, lease.Replica);
        }

        Assert.Null(balancer.Acquire([A, B], [A, B]));
        Assert.Null(balancer.Acquire([]));
    }

    [Fact]
    public void AFailedReplicaIsAvoidedDuringItsCooldownThenUsedAgain()
    {
        var time = new FakeTimeProvider();
        var balancer = new ReplicaBalancer(time, TimeSpan.FromSeconds(5));
        balancer.ReportFailure(A);
        for (var i = 0; i < 4; i++)
        {
            using var lease = balancer.Acquire([A, B])!;
            Assert.Equal(B, lease.Replica);
        }

        // Busy healthy replica still beats an idle failed one.
        using var busy = balancer.Acquire([A, B])!;
        using var busy2 = balancer.Acquire([A, B])!;
        Assert.Equal(B, busy2.Replica);

        // Only the failed one left: it is tried rather than nothing.
        using (var onlyA = balancer.Acquire([A, B], [B])!)
        {
            Assert.Equal(A, onlyA.Replica);
        }

        time.Advance(TimeSpan.FromMilliseconds(5_001));
        busy.Dispose();
        busy2.Dispose();
        var picks = Enumerable.Range(0, 4).Select(_ =>
        {
            using var lease = balancer.Acquire([A, B])!;
            return lease.Replica;
        }).ToList();
        Assert.Contains(A, picks);
    }

    [Fact]
    public void SuccessEndsTheCooldown()
    {
        var balancer = new ReplicaBalancer(new FakeTimeProvider(), TimeSpan.FromSeconds(5));
        balancer.ReportFailure(A);
        Assert.True(balancer.Snapshot().Single(s => s.Address == A).CoolingDown);
        balancer.ReportSuccess(A);
        Assert.False(balancer.Snapshot().Single(s => s.Address == A).CoolingDown);
    }
}
