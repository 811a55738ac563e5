namespace StableLayers.Judges.Vlm;

/// <summary>Thread-safe running totals of calls, cache hits, failures, retries, tokens and call latency (per endpoint too, for a pool).</summary>
public sealed class UsageCounter
{
    private readonly string[]? _endpoints;
    private readonly EndpointTally[] _tallies;
    private int _calls;
    private int _cacheHits;
    private int _failures;
    private int _retries;
    private long _tokensIn;
    private long _tokensOut;
    private long _latencyTicks;

    /// <param name="endpoints">A pool's endpoints, to count per endpoint; null = totals only.</param>
    public UsageCounter(IReadOnlyList<string>? endpoints = null)
    {
        _endpoints = endpoints?.ToArray();
        _tallies = new EndpointTally[_endpoints?.Length ?? 0];
        for (int i = 0; i < _tallies.Length; i++)
        {
            _tallies[i] = new EndpointTally();
        }
    }

    /// <summary>HTTP requests sent (first attempts and retries).</summary>
    public void Call(TimeSpan latency)
    {
        Interlocked.Increment(ref _calls);
        Interlocked.Add(ref _latencyTicks, latency.Ticks);
    }

    /// <summary>An attempt on endpoint <paramref name="index"/> ended (what it said about the endpoint, and what that changed).</summary>
    internal void Endpoint(int index, TimeSpan latency, EndpointVerdict verdict, EndpointChange change)
    {
        if (index >= _tallies.Length || verdict == EndpointVerdict.Unknown)
        {
            return;
        }

        var t = _tallies[index];
        Interlocked.Increment(ref t.Requests);
        Interlocked.Add(ref t.LatencyTicks, latency.Ticks);
        if (verdict == EndpointVerdict.Failed)
        {
            Interlocked.Increment(ref t.Failures);
        }

        if (change.TakenOut)
        {
            Interlocked.Increment(ref t.TakenOut);
        }

        if (change.BackAfter is { } back)
        {
            Interlocked.Add(ref t.OutTicks, back.Ticks);
        }
    }

    public void Retry() => Interlocked.Increment(ref _retries);

    public void CacheHit() => Interlocked.Increment(ref _cacheHits);

    /// <summary>A judgement request that failed after its retries.</summary>
    public void Failure() => Interlocked.Increment(ref _failures);

    public void Tokens(long input, long output)
    {
        Interlocked.Add(ref _tokensIn, input);
        Interlocked.Add(ref _tokensOut, output);
    }

    /// <summary>Summed wall time of all HTTP requests.</summary>
    public TimeSpan CallLatency => TimeSpan.FromTicks(Interlocked.Read(ref _latencyTicks));

    public JudgeUsage Snapshot() => new(
        Volatile.Read(ref _calls),
        Volatile.Read(ref _cacheHits),
        Volatile.Read(ref _failures),
        Volatile.Read(ref _retries),
        Interlocked.Read(ref _tokensIn),
        Interlocked.Read(ref _tokensOut),
        _endpoints?.Select((e, i) => new EndpointUsage(
            e, Volatile.Read(ref _tallies[i].Requests), Volatile.Read(ref _tallies[i].Failures), TimeSpan.FromTicks(Interlocked.Read(ref _tallies[i].LatencyTicks)).TotalMilliseconds,
            Volatile.Read(ref _tallies[i].TakenOut), TimeSpan.FromTicks(Interlocked.Read(ref _tallies[i].OutTicks)).TotalMilliseconds)).ToArray());

    private sealed class EndpointTally
    {
        public int Requests;
        public int Failures;
        public int TakenOut;
        public long LatencyTicks;
        public long OutTicks;
    }
}

/// <summary>
/// A judge's totals over its lifetime (a run), with cost where prices are configured. Contains no secrets.
/// <paramref name="Endpoints"/>: a pool's endpoints as the pool saw them (time out of rotation includes a current outage); null with one endpoint.
/// </summary>
public sealed record VlmRunTotals(JudgeUsage Usage, double? Cost, double CallLatencyMs, int CorruptCacheEntries, IReadOnlyList<EndpointUsage>? Endpoints = null)
{
    public double MeanCallLatencyMs => Usage.Calls == 0 ? 0 : CallLatencyMs / Usage.Calls;
}
