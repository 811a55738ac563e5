using System.ClientModel;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.AI;

namespace StableLayers.Judges.Vlm;

/// <summary>The outcome of one judgement request after its retries: a value (and the endpoint that gave it), or the last error.</summary>
internal sealed record VlmCallResult<T>(T? Value, string? Error, long TokensIn, long TokensOut, int Attempts, string? Endpoint = null)
    where T : class;

/// <summary>
/// Sends chat requests through an <see cref="EndpointPool"/> (a concurrency bound per endpoint, held only
/// while a request is in flight, not while backing off), with a per-attempt timeout and retries with
/// exponential backoff and seeded jitter. Retried: HTTP 408/409/429/5xx (honouring Retry-After /
/// retry-after-ms), timeouts, transport errors and replies that fail to parse or validate. Other
/// HTTP errors (400, 401, 404, ...) fail at once, except that 401/403/404 from one endpoint of a pool
/// (a misconfigured endpoint) are retried on another when one is in rotation. A retry after a failure
/// that took its endpoint out goes at once to an endpoint still in rotation; the backoff applies when
/// none is (or the failure was not the endpoint's). The OpenAI SDK's own retries must be off
/// (see <see cref="VlmJudge.CreateChatClient(VlmJudgeOptions)"/>) so the two don't multiply.
/// </summary>
internal sealed class VlmCaller : IDisposable
{
    private readonly EndpointPool _pool;
    private readonly bool _ownsPool;
    private readonly VlmJudgeOptions _options;
    private readonly Random _jitter;
    private readonly Lock _jitterLock = new();

    /// <summary>A caller over one client (not disposed here).</summary>
    public VlmCaller(IChatClient client, VlmJudgeOptions options)
        : this(new EndpointPool([(VlmJudge.PublicEndpoint(options.Endpoint), client)], options.MaxConcurrency, options.EndpointCooldown, options.EndpointCooldownMax, ownsClients: false), options, ownsPool: true)
    {
    }

    public VlmCaller(EndpointPool pool, VlmJudgeOptions options, bool ownsPool)
    {
        _pool = pool;
        _ownsPool = ownsPool;
        _options = options;
        _jitter = new Random(options.Seed);
    }

    public EndpointPool Pool => _pool;

    public async Task<VlmCallResult<T>> CallAsync<T>(
        IList<ChatMessage> messages, ChatOptions chatOptions, Func<ChatResponse, T> parse, IReadOnlyList<UsageCounter> counters, CancellationToken ct)
        where T : class
    {
        long tokensIn = 0, tokensOut = 0;
        string error = "no attempt made";
        for (int attempt = 0; ; attempt++)
        {
            TimeSpan? retryAfter = null;
            bool retryable = true;
            bool misconfigured = false;
            var verdict = EndpointVerdict.Failed;
            var lease = await _pool.AcquireAsync(ct);
            var sw = Stopwatch.StartNew();
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(_options.Timeout);
                ChatResponse response;
                try
                {
                    response = await lease.Client.GetResponseAsync(messages, chatOptions, timeout.Token);
                }
                finally
                {
                    foreach (var c in counters)
                    {
                        c.Call(sw.Elapsed);
                    }
                }

                verdict = EndpointVerdict.Alive;
                long i = response.Usage?.InputTokenCount ?? 0, o = response.Usage?.OutputTokenCount ?? 0;
                tokensIn += i;
                tokensOut += o;
                foreach (var c in counters)
                {
                    c.Tokens(i, o);
                }

                return new VlmCallResult<T>(parse(response), null, tokensIn, tokensOut, attempt + 1, lease.Endpoint);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                error = $"timed out after {_options.Timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s";
            }
            catch (OperationCanceledException)
            {
                verdict = EndpointVerdict.Unknown;
                throw;
            }
            catch (ClientResultException ex)
            {
                int status = ex.Status;
                retryable = status is 0 or 408 or 409 or 429 or >= 500;
                // 401/403/404: this endpoint is misconfigured (key, path, model), which another endpoint may not be.
                misconfigured = status is 401 or 403 or 404;
                verdict = retryable || misconfigured ? EndpointVerdict.Failed : EndpointVerdict.Alive;
                retryAfter = RetryAfter(ex);
                error = status == 0 ? $"transport error: {ex.Message}" : $"HTTP {status.ToString(CultureInfo.InvariantCulture)}";
            }
            catch (VlmReplyException ex)
            {
                // The server answered; what it said is the model's, not the endpoint's, fault.
                verdict = EndpointVerdict.Alive;
                error = $"invalid reply: {ex.Message}";
            }
            catch (Exception ex)
            {
                error = $"{ex.GetType().Name}: {ex.Message}";
            }
            finally
            {
                var change = _pool.Release(lease, verdict, sw.Elapsed, retryAfter);
                foreach (var c in counters)
                {
                    c.Endpoint(lease.Index, sw.Elapsed, verdict, change);
                }
            }

            bool elsewhere = verdict == EndpointVerdict.Failed && _pool.Count > 1 && _pool.AnyInRotation;
            if (!(retryable || (misconfigured && elsewhere)) || attempt >= _options.MaxRetries)
            {
                foreach (var c in counters)
                {
                    c.Failure();
                }

                string tries = attempt == 0 ? "1 attempt" : $"{(attempt + 1).ToString(CultureInfo.InvariantCulture)} attempts";
                return new VlmCallResult<T>(null, $"{error} ({tries})", tokensIn, tokensOut, attempt + 1, lease.Endpoint);
            }

            foreach (var c in counters)
            {
                c.Retry();
            }

            if (!elsewhere)
            {
                await Task.Delay(Delay(attempt, retryAfter), ct);
            }
        }
    }

    /// <summary>Backoff before retry <paramref name="attempt"/>+1: base*2^attempt capped, times a seeded jitter in [0.5, 1]; never shorter than the server's Retry-After (itself capped).</summary>
    internal TimeSpan Delay(int attempt, TimeSpan? retryAfter)
    {
        double exp = Math.Min(_options.RetryMaxDelay.TotalMilliseconds, _options.RetryBaseDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempt, 30)));
        double jitter;
        lock (_jitterLock)
        {
            jitter = 0.5 + (0.5 * _jitter.NextDouble());
        }

        var backoff = TimeSpan.FromMilliseconds(exp * jitter);
        if (retryAfter is { } ra)
        {
            var honoured = ra < _options.MaxRetryAfter ? ra : _options.MaxRetryAfter;
            return honoured > backoff ? honoured : backoff;
        }

        return backoff;
    }

    private static TimeSpan? RetryAfter(ClientResultException ex)
    {
        var headers = ex.GetRawResponse()?.Headers;
        if (headers is null)
        {
            return null;
        }

        if (headers.TryGetValue("retry-after-ms", out string? ms) && double.TryParse(ms, NumberStyles.Float, CultureInfo.InvariantCulture, out double msv) && msv >= 0)
        {
            return TimeSpan.FromMilliseconds(msv);
        }

        if (headers.TryGetValue("Retry-After", out string? ra) && ra is not null)
        {
            if (double.TryParse(ra, NumberStyles.Float, CultureInfo.InvariantCulture, out double s) && s >= 0)
            {
                return TimeSpan.FromSeconds(s);
            }

            if (DateTimeOffset.TryParse(ra, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var when))
            {
                var d = when - DateTimeOffset.UtcNow;
                return d > TimeSpan.Zero ? d : TimeSpan.Zero;
            }
        }

        return null;
    }

    public void Dispose()
    {
        if (_ownsPool)
        {
            _pool.Dispose();
        }
    }
}
