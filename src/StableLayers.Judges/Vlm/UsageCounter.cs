namespace StableLayers.Judges.Vlm;

/// <summary>Thread-safe running totals of calls, cache hits, failures, retries, tokens and call latency.</summary>
public sealed class UsageCounter
{
    private int _calls;
    private int _cacheHits;
    private int _failures;
    private int _retries;
    private long _tokensIn;
    private long _tokensOut;
    private long _latencyTicks;

    /// <summary>HTTP requests sent (first attempts and retries).</summary>
    public void Call(TimeSpan latency)
    {
        Interlocked.Increment(ref _calls);
        Interlocked.Add(ref _latencyTicks, latency.Ticks);
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
        Interlocked.Read(ref _tokensOut));
}

/// <summary>A judge's totals over its lifetime (a run), with cost where prices are configured. Contains no secrets.</summary>
public sealed record VlmRunTotals(JudgeUsage Usage, double? Cost, double CallLatencyMs, int CorruptCacheEntries)
{
    public double MeanCallLatencyMs => Usage.Calls == 0 ? 0 : CallLatencyMs / Usage.Calls;
}
