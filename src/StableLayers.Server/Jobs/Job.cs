using System.Security.Cryptography;
using StableLayers.Core.Imaging;

namespace StableLayers.Server.Jobs;

public enum JobStatus
{
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

/// <summary>The image formats an upload may be, recognised from the file's first bytes.</summary>
public enum UploadFormat
{
    Png,
    Jpeg,
    WebP,
}

/// <summary>
/// One decomposition job, held in memory only. Its id is 128 random bits (hex), the only way to reach it: nothing
/// lists ids, so a job is visible to whoever uploaded it. State changes under the job's lock.
/// </summary>
public sealed class Job : IDisposable
{
    private readonly Lock gate = new();
    private readonly CancellationTokenSource cancel = new();
    private readonly TaskCompletionSource finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long lastSeenTicks;
    private int holders;

    internal Job(RgbaImage input, UploadFormat format, string displayName, JobSettings settings, DateTimeOffset now)
    {
        Id = NewId();
        Input = input;
        Format = format;
        DisplayName = displayName;
        Settings = settings;
        Created = now;
        lastSeenTicks = now.UtcTicks;
    }

    public string Id { get; }

    public RgbaImage Input { get; }

    public UploadFormat Format { get; }

    /// <summary>The uploaded file's name reduced to [A-Za-z0-9._-] (display and download names only; never a path).</summary>
    public string DisplayName { get; }

    public JobSettings Settings { get; }

    public DateTimeOffset Created { get; }

    public DateTimeOffset? Started { get; private set; }

    public DateTimeOffset? Finished { get; private set; }

    public JobStatus Status { get; private set; } = JobStatus.Queued;

    public JobProgress? Progress { get; private set; }

    public string? Error { get; private set; }

    public JobOutcome? Outcome { get; private set; }

    public bool IsActive => Status is JobStatus.Queued or JobStatus.Running;

    /// <summary>Completes when the job reaches a final state (done, failed or cancelled).</summary>
    public Task Completion => finished.Task;

    internal CancellationToken CancellationToken => cancel.Token;

    internal DateTimeOffset LastSeen => new(Interlocked.Read(ref lastSeenTicks), TimeSpan.Zero);

    /// <summary>Requests holding the job alive with an open connection (<c>?wait=1</c>); while any does, no heartbeat is needed.</summary>
    internal bool Held => Volatile.Read(ref holders) > 0;

    /// <summary>128 random bits from the OS's cryptographic generator, as 32 lower-case hex digits.</summary>
    public static string NewId() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    /// <summary>Ids are exactly 32 lower-case hex digits; anything else is not looked up at all.</summary>
    public static bool IsWellFormedId(string? id) => id is { Length: 32 } && id.All(c => c is (>= '0' and <= '9') or (>= 'a' and <= 'f'));

    internal void Touch(DateTimeOffset now) => Interlocked.Exchange(ref lastSeenTicks, now.UtcTicks);

    internal void Hold() => Interlocked.Increment(ref holders);

    internal void Release(DateTimeOffset now)
    {
        Touch(now);
        Interlocked.Decrement(ref holders);
    }

    /// <summary>Queued -> running; false when it was cancelled while waiting.</summary>
    internal bool TryStart(DateTimeOffset now)
    {
        lock (gate)
        {
            if (Status != JobStatus.Queued)
            {
                return false;
            }

            Status = JobStatus.Running;
            Started = now;
            return true;
        }
    }

    internal void Report(JobProgress progress)
    {
        lock (gate)
        {
            if (Status == JobStatus.Running)
            {
                Progress = progress;
            }
        }
    }

    internal void Complete(JobOutcome outcome, DateTimeOffset now) => End(JobStatus.Done, null, outcome, now);

    internal void Fail(string error, DateTimeOffset now) => End(JobStatus.Failed, error, null, now);

    /// <summary>Cancels a queued or running job (a running one stops at its next sampling step); false if it had ended.</summary>
    internal bool Cancel(string reason, DateTimeOffset now)
    {
        if (!End(JobStatus.Cancelled, reason, null, now))
        {
            return false;
        }

        cancel.Cancel();
        return true;
    }

    /// <summary>Frees the cancellation source; the queue calls it when it forgets a finished job.</summary>
    public void Dispose() => cancel.Dispose();

    private bool End(JobStatus status, string? error, JobOutcome? outcome, DateTimeOffset now)
    {
        lock (gate)
        {
            if (!IsActive)
            {
                return false;
            }

            Status = status;
            Error = error;
            Outcome = outcome;
            Finished = now;
        }

        finished.TrySetResult();
        return true;
    }
}
