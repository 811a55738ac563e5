using Microsoft.Extensions.AI;
using StableLayers.Judges.Vlm;

namespace StableLayers.Judges.Tests;

/// <summary>The pool's state machine on a hand-driven clock: every step deterministic.</summary>
public class EndpointPoolTests
{
    private sealed class ManualTime : TimeProvider
    {
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }

    /// <summary>A client the pool hands out but these tests never call.</summary>
    private sealed class UnusedClient : IChatClient
    {
        public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            throw new InvalidOperationException("not called");

        public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            throw new InvalidOperationException("not called");

        public object? GetService(Type serviceType, object? serviceKey = null) => null;

        public void Dispose()
        {
        }
    }

    private static readonly TimeSpan Ms = TimeSpan.FromMilliseconds(1);

    private static (EndpointPool Pool, ManualTime Time, List<string> Log) Pool(int endpoints, int maxConcurrency = 4, double cooldownS = 5, double maxCooldownS = 20)
    {
        var time = new ManualTime();
        var log = new List<string>();
        var pool = new EndpointPool(
            Enumerable.Range(0, endpoints).Select(i => ($"http://e{i}:8000/v1", (IChatClient)new UnusedClient())).ToArray(),
            maxConcurrency, TimeSpan.FromSeconds(cooldownS), TimeSpan.FromSeconds(maxCooldownS), ownsClients: true, log.Add, time);
        return (pool, time, log);
    }

    private static EndpointLease Take(EndpointPool pool) => pool.TryAcquire() ?? throw new InvalidOperationException("no endpoint free");

    [Fact]
    public void RequestsGoToTheFewestOutstandingWithTiesToTheLowestIndex()
    {
        var (pool, _, _) = Pool(3, maxConcurrency: 2);
        var leases = Enumerable.Range(0, 6).Select(_ => Take(pool)).ToList();
        Assert.Equal([0, 1, 2, 0, 1, 2], leases.Select(l => l.Index));
        Assert.Null(pool.TryAcquire()); // every endpoint at max_concurrency

        pool.Release(leases[2], EndpointVerdict.Alive, Ms);
        pool.Release(leases[1], EndpointVerdict.Alive, Ms);
        pool.Release(leases[4], EndpointVerdict.Alive, Ms);
        // Outstanding now 2, 0, 1: endpoint 1 first, then 1 and 2 tie at 1 (lowest index), then 2.
        Assert.Equal([1, 1, 2], Enumerable.Range(0, 3).Select(_ => Take(pool).Index));
        Assert.Null(pool.TryAcquire());
    }

    [Fact]
    public void AFailedEndpointSitsOutItsCooldownIsProbedOnceAndComesBack()
    {
        var (pool, time, log) = Pool(2, maxConcurrency: 4, cooldownS: 5, maxCooldownS: 20);
        var first = Take(pool);
        Assert.Equal(0, first.Index);
        Assert.True(pool.Release(first, EndpointVerdict.Failed, Ms).TakenOut);
        Assert.False(pool.InRotation(0));
        Assert.Contains(log, l => l.Contains("http://e0:8000/v1 out of rotation for 5 s", StringComparison.Ordinal));

        // Out for its cool-down: everything goes to endpoint 1, whose outstanding count would otherwise send some to 0.
        void OnlyTheOther(TimeSpan span)
        {
            var held = Enumerable.Range(0, 4).Select(_ => Take(pool)).ToList();
            Assert.All(held, l => Assert.Equal(1, l.Index));
            Assert.Null(pool.TryAcquire());
            held.ForEach(l => pool.Release(l, EndpointVerdict.Alive, Ms));
            time.Advance(span);
        }

        // Cool-downs 5, 10, 20, 20 s (doubling per failed probe, capped): never a request before each has passed.
        double[] cooldowns = [5, 10, 20, 20];
        for (int k = 0; k < cooldowns.Length; k++)
        {
            OnlyTheOther(TimeSpan.FromSeconds(cooldowns[k]) - Ms);
            OnlyTheOther(Ms);
            var probe = Take(pool);
            Assert.Equal((0, true), (probe.Index, probe.WhileOut));
            var other = Take(pool);
            Assert.Equal(1, other.Index); // one probe at a time
            pool.Release(other, EndpointVerdict.Alive, Ms);
            if (k < cooldowns.Length - 1)
            {
                pool.Release(probe, EndpointVerdict.Failed, Ms);
                Assert.False(pool.InRotation(0));
            }
            else
            {
                var back = pool.Release(probe, EndpointVerdict.Alive, Ms);
                Assert.Equal(TimeSpan.FromSeconds(5 + 10 + 20 + 20), back.BackAfter);
            }
        }

        Assert.True(pool.InRotation(0));
        Assert.Contains(log, l => l.Contains("http://e0:8000/v1 back in rotation after 55 s out", StringComparison.Ordinal));
        var e0 = pool.Snapshot()[0];
        Assert.Equal((5, 4, 1, 55_000.0), (e0.Requests, e0.Failures, e0.TakenOut, e0.OutMs));

        // Back in rotation (ties go to it again), and the next outage starts from 5 s.
        var again = Take(pool);
        Assert.Equal((0, false), (again.Index, again.WhileOut));
        pool.Release(again, EndpointVerdict.Failed, Ms);
        OnlyTheOther(TimeSpan.FromSeconds(5) - Ms);
        OnlyTheOther(Ms);
        var next = Take(pool);
        Assert.Equal((0, true), (next.Index, next.WhileOut));
    }

    [Fact]
    public void AttemptsSentBeforeAnEndpointWentOutChangeNothing()
    {
        var (pool, time, _) = Pool(2, maxConcurrency: 4);
        var l = Enumerable.Range(0, 5).Select(_ => Take(pool)).ToList();
        var (a, b, c) = (l[0], l[2], l[4]);
        Assert.Equal([0, 0, 0], new[] { a, b, c }.Select(x => x.Index));
        pool.Release(a, EndpointVerdict.Failed, Ms);
        Assert.False(pool.Release(b, EndpointVerdict.Failed, Ms).TakenOut); // already out: no second outage, no longer cool-down
        Assert.Null(pool.Release(c, EndpointVerdict.Alive, Ms).BackAfter); // an answer to an old request does not re-admit
        Assert.False(pool.InRotation(0));
        Assert.Equal(1, pool.Snapshot()[0].TakenOut);
        time.Advance(TimeSpan.FromSeconds(5));
        var probe = Take(pool);
        Assert.Equal((0, true), (probe.Index, probe.WhileOut));
    }

    [Fact]
    public void WhenEveryEndpointIsOutRequestsStillGoAndAnAnswerReadmits()
    {
        var (pool, _, log) = Pool(2);
        pool.Release(Take(pool), EndpointVerdict.Failed, Ms);
        pool.Release(Take(pool), EndpointVerdict.Failed, Ms);
        Assert.False(pool.AnyInRotation);
        var l = Take(pool);
        Assert.True(l.WhileOut);
        Assert.Equal(0, l.Index);
        pool.Release(l, EndpointVerdict.Alive, Ms);
        Assert.True(pool.InRotation(0));
        Assert.False(pool.InRotation(1));
        Assert.Single(log, x => x.Contains("back in rotation", StringComparison.Ordinal));
    }

    [Fact]
    public void OneEndpointIsNeverTakenOut()
    {
        var (pool, _, log) = Pool(1);
        pool.Release(Take(pool), EndpointVerdict.Failed, Ms);
        Assert.True(pool.InRotation(0));
        Assert.Empty(log);
        Assert.False(Take(pool).WhileOut);
    }

    [Fact]
    public void CooldownDoublesToItsCap()
    {
        var (pool, _, _) = Pool(2, cooldownS: 5, maxCooldownS: 300);
        Assert.Equal([5.0, 10, 20, 40, 80, 160, 300, 300], Enumerable.Range(1, 8).Select(k => pool.Cooldown(k).TotalSeconds));
    }

    [Fact]
    public async Task AWaitingRequestGetsTheProbeWhenTheCooldownEnds()
    {
        // Real clock: endpoint 1 is full, endpoint 0 out for 150 ms; the waiter is woken for the probe.
        var pool = new EndpointPool(
            [("http://e0/v1", new UnusedClient()), ("http://e1/v1", new UnusedClient())], 1, TimeSpan.FromMilliseconds(150), TimeSpan.FromSeconds(1), ownsClients: true);
        var a = await pool.AcquireAsync(CancellationToken.None);
        var b = await pool.AcquireAsync(CancellationToken.None);
        pool.Release(a, EndpointVerdict.Failed, Ms);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var probe = await pool.AcquireAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((0, true), (probe.Index, probe.WhileOut));
        Assert.True(sw.Elapsed >= TimeSpan.FromMilliseconds(100), $"probed after {sw.Elapsed.TotalMilliseconds} ms");
        Assert.Equal(1, b.Index);
    }
}
