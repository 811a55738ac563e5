using System.Collections.Concurrent;
using StableLayers.Core.Imaging;

namespace StableLayers.Server.Jobs;

/// <summary>How full the queue is; what <c>/api/info</c> reports (counts only, never ids).</summary>
public sealed record QueueStats(int Running, int Queued, int MaxRunning, int MaxQueued);

/// <summary>
/// Jobs in memory: a bounded waiting line served by <see cref="ServerOptions.MaxRunning"/> runner threads, a heartbeat
/// watch that cancels jobs nobody asks about any more, and a store that forgets the oldest finished jobs beyond
/// <see cref="ServerOptions.KeepFinished"/>. Nothing here touches the file system.
/// </summary>
public sealed class JobQueue : IDisposable
{
    private readonly IDecomposeEngine engine;
    private readonly ServerOptions options;
    private readonly TimeProvider time;
    private readonly ConcurrentDictionary<string, Job> jobs = new(StringComparer.Ordinal);
    private readonly Lock gate = new();
    private readonly LinkedList<Job> waiting = new();
    private readonly LinkedList<Job> finishedOrder = new();
    private readonly SemaphoreSlim available = new(0);
    private readonly CancellationTokenSource stopping = new();
    private readonly Thread[] runners;
    private readonly ITimer heartbeat;
    private int running;

    public JobQueue(IDecomposeEngine engine, ServerOptions options, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        this.engine = engine;
        this.options = options;
        this.time = time ?? TimeProvider.System;
        runners = Enumerable.Range(0, options.MaxRunning)
            .Select(i => new Thread(RunnerLoop) { IsBackground = true, Name = $"stable-layers job runner {i}" })
            .ToArray();
        foreach (var t in runners)
        {
            t.Start();
        }

        var period = TimeSpan.FromTicks(Math.Clamp(options.HeartbeatTimeout.Ticks / 4, TimeSpan.TicksPerMillisecond * 50, TimeSpan.TicksPerSecond));
        heartbeat = this.time.CreateTimer(_ => CancelAbandoned(), null, period, period);
    }

    public IDecomposeEngine Engine => engine;

    public ServerOptions Options => options;

    public TimeProvider Time => time;

    public QueueStats Stats
    {
        get
        {
            lock (gate)
            {
                return new QueueStats(running, waiting.Count, options.MaxRunning, options.MaxQueued);
            }
        }
    }

    /// <summary>Every job still known (tests; the API never lists jobs).</summary>
    internal IReadOnlyCollection<Job> All => jobs.Values.ToList();

    /// <summary>Adds a job, or returns null when <see cref="ServerOptions.MaxQueued"/> jobs already wait (the API answers 429).</summary>
    public Job? TryEnqueue(RgbaImage input, UploadFormat format, string displayName, JobSettings settings)
    {
        var job = new Job(input, format, displayName, settings, time.GetUtcNow());
        lock (gate)
        {
            // A free runner takes the job at once, so it counts against the waiting line only when all runners are busy.
            int freeRunners = options.MaxRunning - running;
            if (waiting.Count >= freeRunners + options.MaxQueued)
            {
                return null;
            }

            waiting.AddLast(job);
            jobs[job.Id] = job;
        }

        available.Release();
        return job;
    }

    /// <summary>The job with this id, or null (malformed ids are not looked up). Counts as the client's heartbeat.</summary>
    public Job? Find(string? id, bool heartbeat = true)
    {
        if (!Job.IsWellFormedId(id) || !jobs.TryGetValue(id!, out var job))
        {
            return null;
        }

        if (heartbeat)
        {
            job.Touch(time.GetUtcNow());
        }

        return job;
    }

    /// <summary>0-based place in the waiting line, or null when not waiting.</summary>
    public int? QueuePosition(Job job)
    {
        lock (gate)
        {
            int i = 0;
            for (var node = waiting.First; node is not null; node = node.Next, i++)
            {
                if (ReferenceEquals(node.Value, job))
                {
                    return i;
                }
            }
        }

        return null;
    }

    public bool Cancel(Job job, string reason)
    {
        ArgumentNullException.ThrowIfNull(job);
        bool cancelled = job.Cancel(reason, time.GetUtcNow());
        if (cancelled)
        {
            lock (gate)
            {
                // A waiting job leaves the line at once, freeing its place; a running one frees its runner when it stops.
                if (waiting.Remove(job))
                {
                    Retire(job);
                }
            }
        }

        return cancelled;
    }

    /// <summary>Cancels the job if active and forgets it.</summary>
    public void Remove(Job job)
    {
        ArgumentNullException.ThrowIfNull(job);
        Cancel(job, "deleted");
        lock (gate)
        {
            jobs.TryRemove(job.Id, out _);
            finishedOrder.Remove(job);
        }
    }

    /// <summary>Waits until the job ends, holding it alive meanwhile; a cancelled <paramref name="connection"/> (the client went away) cancels the job.</summary>
    public async Task WaitHeldAsync(Job job, CancellationToken connection)
    {
        ArgumentNullException.ThrowIfNull(job);
        job.Hold();
        try
        {
            await job.Completion.WaitAsync(connection);
        }
        catch (OperationCanceledException) when (connection.IsCancellationRequested)
        {
            Cancel(job, "cancelled: the client disconnected");
            throw;
        }
        finally
        {
            job.Release(time.GetUtcNow());
        }
    }

    public void Dispose()
    {
        stopping.Cancel();
        heartbeat.Dispose();
        foreach (var job in jobs.Values)
        {
            job.Cancel("server stopping", time.GetUtcNow());
        }

        foreach (var t in runners)
        {
            t.Join(TimeSpan.FromSeconds(30));
        }

        available.Dispose();
        stopping.Dispose();
    }

    private void RunnerLoop()
    {
        while (true)
        {
            try
            {
                available.Wait(stopping.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            Job? job;
            lock (gate)
            {
                job = waiting.First?.Value;
                if (job is null)
                {
                    // Its job was cancelled while waiting and has left the line already.
                    continue;
                }

                waiting.RemoveFirst();
                if (!job.TryStart(time.GetUtcNow()))
                {
                    // Cancelled between leaving the line and starting: it is finished now.
                    Retire(job);
                    continue;
                }

                running++;
            }

            var token = job.CancellationToken;
            try
            {
                var outcome = engine.Run(job.Input, job.Settings, job.Report, token);
                job.Complete(outcome, time.GetUtcNow());
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                // Cancel() already recorded why.
            }
            catch (Exception e)
            {
                job.Fail(e is Core.BadInputException ? e.Message : $"decomposition failed: {e.GetType().Name}: {e.Message}", time.GetUtcNow());
            }
            finally
            {
                lock (gate)
                {
                    running--;
                    Retire(job);
                }
            }
        }
    }

    /// <summary>Records a finished job and forgets the oldest finished ones beyond the limit. Call under the lock.</summary>
    private void Retire(Job job)
    {
        if (job.IsActive || finishedOrder.Contains(job) || !jobs.ContainsKey(job.Id))
        {
            return;
        }

        finishedOrder.AddLast(job);
        while (finishedOrder.Count > options.KeepFinished)
        {
            var oldest = finishedOrder.First!.Value;
            finishedOrder.RemoveFirst();
            jobs.TryRemove(oldest.Id, out _);

            // Finished, so no runner holds its token any more.
            oldest.Dispose();
        }
    }

    private void CancelAbandoned()
    {
        var now = time.GetUtcNow();
        foreach (var job in jobs.Values)
        {
            if (job.IsActive && !job.Held && now - job.LastSeen > options.HeartbeatTimeout)
            {
                Cancel(job, $"cancelled: no status request for {options.HeartbeatTimeout.TotalSeconds:0.#} s (the client went away)");
            }
        }
    }
}
