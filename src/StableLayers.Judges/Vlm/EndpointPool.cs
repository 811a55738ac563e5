using System.Globalization;
using Microsoft.Extensions.AI;

namespace StableLayers.Judges.Vlm;

/// <summary>What one attempt says about the health of the endpoint that served it.</summary>
internal enum EndpointVerdict
{
    /// <summary>The server answered (a valid reply, an unparsable reply, or an HTTP error that is the request's fault such as 400/413/422).</summary>
    Alive,

    /// <summary>
    /// The endpoint could not serve: transport error, timeout, HTTP 408/409/429/5xx (what <see cref="VlmCaller"/> retries),
    /// or 401/403/404 (a misconfigured endpoint: wrong key, path or model for this server while the others may be right).
    /// </summary>
    Failed,

    /// <summary>No verdict: the caller cancelled the attempt.</summary>
    Unknown,
}

/// <summary>One request's hold on an endpoint: release it exactly once with <see cref="EndpointPool.Release"/>.</summary>
internal sealed record EndpointLease(int Index, string Endpoint, IChatClient Client, bool WhileOut, long Epoch);

/// <summary>What a release changed, for the per-group usage counters.</summary>
internal readonly record struct EndpointChange(bool TakenOut, TimeSpan? BackAfter);

/// <summary>
/// Several OpenAI-compatible endpoints serving the same model, used as one judge.
/// <list type="bullet">
/// <item>Balancing: a request goes to the in-rotation endpoint with the fewest outstanding requests (ties: the
/// lowest index), each endpoint holding at most <c>maxConcurrency</c> requests at once (the bound is per endpoint,
/// so a pool of n serves up to n times as many).</item>
/// <item>A <see cref="EndpointVerdict.Failed"/> attempt takes its endpoint out of rotation for a cool-down
/// (<c>cooldown</c>, doubling with every failed probe up to <c>maxCooldown</c>). When it has passed, the next
/// request goes to that endpoint alone as a probe (half-open); an answer puts it back (and resets the cool-down),
/// a failure takes it out again for twice as long. Requests that were already in flight when it was taken
/// out change nothing.</item>
/// <item>When every endpoint is out there is nowhere better to go: requests go to the out endpoints anyway
/// (fewest outstanding first) and the caller's backoff paces them, exactly as with one endpoint; an answer
/// from one puts it back.</item>
/// <item>A pool of one endpoint never takes it out (nothing to route around); it behaves as the single
/// endpoint always did.</item>
/// </list>
/// Thread-safe. Waiting for a free endpoint does not hold a thread.
/// </summary>
internal sealed class EndpointPool : IDisposable
{
    private readonly Member[] _members;
    private readonly bool _ownsClients;
    private readonly int _maxConcurrency;
    private readonly TimeSpan _cooldown;
    private readonly TimeSpan _maxCooldown;
    private readonly TimeProvider _time;
    private readonly Action<string>? _log;
    private readonly Lock _lock = new();
    private TaskCompletionSource _changed = NewSignal();

    public EndpointPool(
        IReadOnlyList<(string Endpoint, IChatClient Client)> endpoints, int maxConcurrency, TimeSpan cooldown, TimeSpan maxCooldown,
        bool ownsClients, Action<string>? log = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentOutOfRangeException.ThrowIfZero(endpoints.Count);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConcurrency, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(cooldown, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCooldown, cooldown);
        _members = endpoints.Select(e => new Member(e.Endpoint, e.Client)).ToArray();
        _maxConcurrency = maxConcurrency;
        _cooldown = cooldown;
        _maxCooldown = maxCooldown;
        _ownsClients = ownsClients;
        _log = log;
        _time = time ?? TimeProvider.System;
    }

    public int Count => _members.Length;

    public IReadOnlyList<string> Endpoints => _members.Select(m => m.Endpoint).ToArray();

    /// <summary>True when at least one endpoint is in rotation (a failed request can be retried elsewhere at once).</summary>
    public bool AnyInRotation
    {
        get
        {
            lock (_lock)
            {
                return _members.Any(m => !m.Out);
            }
        }
    }

    /// <summary>Whether endpoint <paramref name="index"/> is in rotation now.</summary>
    public bool InRotation(int index)
    {
        lock (_lock)
        {
            return !_members[index].Out;
        }
    }

    /// <summary>The cool-down an endpoint gets after its <paramref name="outages"/>-th consecutive failure (1-based): cooldown * 2^(outages-1), capped.</summary>
    public TimeSpan Cooldown(int outages)
    {
        double ms = _cooldown.TotalMilliseconds * Math.Pow(2, Math.Clamp(outages - 1, 0, 40));
        return TimeSpan.FromMilliseconds(Math.Min(ms, _maxCooldown.TotalMilliseconds));
    }

    /// <summary>An endpoint for one attempt, waiting (without a thread) until one has room.</summary>
    public async Task<EndpointLease> AcquireAsync(CancellationToken ct)
    {
        while (true)
        {
            Task changed;
            TimeSpan? untilProbe;
            lock (_lock)
            {
                if (TryAcquireLocked() is { } lease)
                {
                    return lease;
                }

                changed = _changed.Task;
                untilProbe = UntilNextProbeLocked();
            }

            using var wake = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var delay = untilProbe is { } d ? Task.Delay(d + TimeSpan.FromMilliseconds(1), _time, wake.Token) : Task.Delay(Timeout.Infinite, wake.Token);
            await Task.WhenAny(changed, delay).ConfigureAwait(false);
            await wake.CancelAsync().ConfigureAwait(false);
            ct.ThrowIfCancellationRequested();
        }
    }

    /// <summary>An endpoint for one attempt when one has room now, else null.</summary>
    public EndpointLease? TryAcquire()
    {
        lock (_lock)
        {
            return TryAcquireLocked();
        }
    }

    /// <summary>Ends an attempt: frees its slot, records it, and moves the endpoint in or out of rotation as the verdict says.</summary>
    public EndpointChange Release(EndpointLease lease, EndpointVerdict verdict, TimeSpan latency, TimeSpan? retryAfter = null)
    {
        ArgumentNullException.ThrowIfNull(lease);
        string? line = null;
        EndpointChange change = default;
        TaskCompletionSource signal;
        lock (_lock)
        {
            var m = _members[lease.Index];
            m.Outstanding--;
            if (verdict != EndpointVerdict.Unknown)
            {
                m.Requests++;
                m.LatencyTicks += latency.Ticks;
            }

            if (verdict == EndpointVerdict.Failed)
            {
                m.Failures++;
            }

            bool probe = lease.WhileOut && m.Probing && lease.Epoch == m.Epoch;
            if (probe)
            {
                m.Probing = false;
            }

            long now = _time.GetTimestamp();
            if (_members.Length > 1)
            {
                if (verdict == EndpointVerdict.Alive && m.Out && lease.WhileOut && lease.Epoch == m.Epoch)
                {
                    // A probe (or an all-down request) was answered: back in rotation, cool-down reset.
                    var outFor = _time.GetElapsedTime(m.OutSince, now);
                    m.OutTicks += outFor.Ticks;
                    m.Out = false;
                    m.Probing = false;
                    m.Outages = 0;
                    m.Epoch++;
                    change = new EndpointChange(false, outFor);
                    line = $"judge endpoint {m.Endpoint} back in rotation after {Seconds(outFor)} s out";
                }
                else if (verdict == EndpointVerdict.Failed && !m.Out && lease.Epoch == m.Epoch)
                {
                    m.Out = true;
                    m.Probing = false;
                    m.Outages = 1;
                    m.Epoch++;
                    m.TakenOut++;
                    m.OutSince = now;
                    m.OutUntil = now + Ticks(Longer(Cooldown(1), retryAfter));
                    change = new EndpointChange(true, null);
                    line = $"judge endpoint {m.Endpoint} out of rotation for {Seconds(Longer(Cooldown(1), retryAfter))} s ({_members.Count(x => !x.Out)} of {_members.Length} left)";
                }
                else if (verdict == EndpointVerdict.Failed && probe)
                {
                    m.Outages++;
                    m.OutUntil = now + Ticks(Longer(Cooldown(m.Outages), retryAfter));
                    line = $"judge endpoint {m.Endpoint} probe failed, out for {Seconds(Longer(Cooldown(m.Outages), retryAfter))} s more";
                }
            }

            signal = _changed;
            _changed = NewSignal();
        }

        signal.TrySetResult();
        if (line is not null)
        {
            _log?.Invoke(line);
        }

        return change;
    }

    /// <summary>Per-endpoint totals since the pool was made (time out of rotation includes a current outage).</summary>
    public IReadOnlyList<EndpointUsage> Snapshot()
    {
        lock (_lock)
        {
            long now = _time.GetTimestamp();
            return _members.Select(m => new EndpointUsage(
                m.Endpoint, m.Requests, m.Failures, TimeSpan.FromTicks(m.LatencyTicks).TotalMilliseconds, m.TakenOut,
                (TimeSpan.FromTicks(m.OutTicks) + (m.Out ? _time.GetElapsedTime(m.OutSince, now) : TimeSpan.Zero)).TotalMilliseconds)).ToArray();
        }
    }

    private EndpointLease? TryAcquireLocked()
    {
        long now = _time.GetTimestamp();
        bool anyIn = false;
        Member? best = null;
        int bestIndex = -1;
        for (int i = 0; i < _members.Length; i++)
        {
            var m = _members[i];
            if (m.Out)
            {
                // Half-open: one probe once the cool-down has passed, before any in-rotation choice.
                if (!m.Probing && m.Outstanding < _maxConcurrency && now >= m.OutUntil)
                {
                    m.Probing = true;
                    return Lease(i, whileOut: true);
                }

                continue;
            }

            anyIn = true;
            if (m.Outstanding < _maxConcurrency && (best is null || m.Outstanding < best.Outstanding))
            {
                best = m;
                bestIndex = i;
            }
        }

        if (best is not null)
        {
            return Lease(bestIndex, whileOut: false);
        }

        if (anyIn)
        {
            return null;
        }

        // Every endpoint is out: send anyway (the caller's backoff paces the retries), fewest outstanding first.
        for (int i = 0; i < _members.Length; i++)
        {
            var m = _members[i];
            if (m.Outstanding < _maxConcurrency && (best is null || m.Outstanding < best.Outstanding))
            {
                best = m;
                bestIndex = i;
            }
        }

        return best is null ? null : Lease(bestIndex, whileOut: true);
    }

    private EndpointLease Lease(int index, bool whileOut)
    {
        var m = _members[index];
        m.Outstanding++;
        return new EndpointLease(index, m.Endpoint, m.Client, whileOut, m.Epoch);
    }

    private TimeSpan? UntilNextProbeLocked()
    {
        long now = _time.GetTimestamp();
        TimeSpan? next = null;
        foreach (var m in _members.Where(m => m.Out && !m.Probing && m.Outstanding < _maxConcurrency))
        {
            var d = m.OutUntil > now ? _time.GetElapsedTime(now, m.OutUntil) : TimeSpan.Zero;
            next = next is null || d < next ? d : next;
        }

        return next;
    }

    private long Ticks(TimeSpan t) => (long)(t.TotalSeconds * _time.TimestampFrequency);

    private TimeSpan Longer(TimeSpan cooldown, TimeSpan? retryAfter) =>
        retryAfter is { } ra && ra > cooldown ? (ra < _maxCooldown ? ra : _maxCooldown) : cooldown;

    private static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Dispose()
    {
        if (_ownsClients)
        {
            foreach (var m in _members)
            {
                m.Client.Dispose();
            }
        }
    }

    private sealed class Member(string endpoint, IChatClient client)
    {
        public string Endpoint { get; } = endpoint;

        public IChatClient Client { get; } = client;

        public int Outstanding { get; set; }

        public bool Out { get; set; }

        /// <summary>Bumped on every move in or out of rotation, so attempts sent before the move change nothing.</summary>
        public long Epoch { get; set; }

        public bool Probing { get; set; }

        /// <summary>Consecutive outages (1 after the first failure, +1 per failed probe); sets the cool-down.</summary>
        public int Outages { get; set; }

        public long OutSince { get; set; }

        public long OutUntil { get; set; }

        public int Requests { get; set; }

        public int Failures { get; set; }

        public int TakenOut { get; set; }

        public long LatencyTicks { get; set; }

        public long OutTicks { get; set; }
    }
}
