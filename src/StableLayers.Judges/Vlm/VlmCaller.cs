using System.ClientModel;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.AI;

namespace StableLayers.Judges.Vlm;

/// <summary>The outcome of one judgement request after its retries: a value, or the last error.</summary>
internal sealed record VlmCallResult<T>(T? Value, string? Error, long TokensIn, long TokensOut, int Attempts)
    where T : class;

/// <summary>
/// Sends chat requests with a concurrency bound (one <see cref="SemaphoreSlim"/> per judge, held only
/// while a request is in flight, not while backing off), a per-attempt timeout, and retries with
/// exponential backoff and seeded jitter. Retried: HTTP 408/429/5xx (honouring Retry-After /
/// retry-after-ms), timeouts, transport errors and replies that fail to parse or validate. Other
/// HTTP errors (400, 401, 404, ...) fail at once. The OpenAI SDK's own retries must be off
/// (see <see cref="VlmJudge.CreateChatClient"/>) so the two don't multiply.
/// </summary>
internal sealed class VlmCaller : IDisposable
{
    private readonly IChatClient _client;
    private readonly VlmJudgeOptions _options;
    private readonly SemaphoreSlim _gate;
    private readonly Random _jitter;
    private readonly Lock _jitterLock = new();

    public VlmCaller(IChatClient client, VlmJudgeOptions options)
    {
        _client = client;
        _options = options;
        _gate = new SemaphoreSlim(options.MaxConcurrency, options.MaxConcurrency);
        _jitter = new Random(options.Seed);
    }

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
            await _gate.WaitAsync(ct);
            var sw = Stopwatch.StartNew();
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(_options.Timeout);
                ChatResponse response;
                try
                {
                    response = await _client.GetResponseAsync(messages, chatOptions, timeout.Token);
                }
                finally
                {
                    foreach (var c in counters)
                    {
                        c.Call(sw.Elapsed);
                    }
                }

                long i = response.Usage?.InputTokenCount ?? 0, o = response.Usage?.OutputTokenCount ?? 0;
                tokensIn += i;
                tokensOut += o;
                foreach (var c in counters)
                {
                    c.Tokens(i, o);
                }

                return new VlmCallResult<T>(parse(response), null, tokensIn, tokensOut, attempt + 1);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                error = $"timed out after {_options.Timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s";
            }
            catch (ClientResultException ex)
            {
                int status = ex.Status;
                retryable = status is 0 or 408 or 409 or 429 or >= 500;
                retryAfter = RetryAfter(ex);
                error = status == 0 ? $"transport error: {ex.Message}" : $"HTTP {status.ToString(CultureInfo.InvariantCulture)}";
            }
            catch (VlmReplyException ex)
            {
                error = $"invalid reply: {ex.Message}";
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                error = $"{ex.GetType().Name}: {ex.Message}";
            }
            finally
            {
                _gate.Release();
            }

            if (!retryable || attempt >= _options.MaxRetries)
            {
                foreach (var c in counters)
                {
                    c.Failure();
                }

                string tries = attempt == 0 ? "1 attempt" : $"{(attempt + 1).ToString(CultureInfo.InvariantCulture)} attempts";
                return new VlmCallResult<T>(null, $"{error} ({tries})", tokensIn, tokensOut, attempt + 1);
            }

            foreach (var c in counters)
            {
                c.Retry();
            }

            await Task.Delay(Delay(attempt, retryAfter), ct);
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

    public void Dispose() => _gate.Dispose();
}
