using StableLayers.Distributed;
using static TorchSharp.torch;

namespace StableLayers.Training.Tests;

/// <summary>
/// A test double of the MPI communicator: N ranks as N threads of one process, meeting in a shared rendezvous for every
/// collective. Sums run in rank order (as MPI's reduction of two ranks does), every rank must call the same collective
/// (a rank that calls another one fails the run instead of hanging), and <see cref="Abort"/> makes every rank's pending
/// or next collective throw <see cref="RankAbortedException"/>.
/// </summary>
internal sealed class ThreadedCommunicator : ICommunicator
{
    private readonly Rendezvous shared;

    private ThreadedCommunicator(Rendezvous shared, int rank)
    {
        this.shared = shared;
        Rank = rank;
    }

    public int Rank { get; }

    public int WorldSize => shared.World;

    public DistributedBackend Backend => DistributedBackend.Mpi;

    /// <summary>
    /// Runs <paramref name="body"/> as ranks 0..<paramref name="world"/>-1, each on its own thread with its own
    /// communicator, and returns each rank's result or exception.
    /// </summary>
    public static IReadOnlyList<(T? Result, Exception? Error)> Run<T>(int world, Func<ThreadedCommunicator, Task<T>> body)
    {
        using var shared = new Rendezvous(world);
        var results = new (T? Result, Exception? Error)[world];
        var threads = Enumerable.Range(0, world).Select(rank => new Thread(
            () =>
            {
                var comm = new ThreadedCommunicator(shared, rank);
                try
                {
                    results[rank] = (body(comm).GetAwaiter().GetResult(), null);
                }
                catch (Exception e)
                {
                    results[rank] = (default, e);
                    // A rank that fails outside the trainer (a test bug) must not leave the others waiting either.
                    shared.Fail($"rank {rank} threw {e.GetType().Name}: {e.Message}");
                }
            },
            16 << 20)).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        return results;
    }

    public void AllReduceSum(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.device_type != TorchSharp.DeviceType.CPU || !tensor.is_contiguous())
        {
            throw new ArgumentException("the MPI double reduces contiguous host tensors", nameof(tensor));
        }

        using var scope = NewDisposeScope();
        switch (tensor.dtype)
        {
            case ScalarType.Float32:
                var f = Exchange("AllReduceSum(float32)", tensor.data<float>().ToArray());
                var fs = (float[])f[0].Clone();
                for (int r = 1; r < f.Length; r++)
                {
                    Add(fs, f[r]);
                }

                CopyInto(tensor, TorchSharp.torch.tensor(fs));
                break;
            case ScalarType.Float64:
                var d = Exchange("AllReduceSum(float64)", tensor.data<double>().ToArray());
                var ds = (double[])d[0].Clone();
                for (int r = 1; r < d.Length; r++)
                {
                    for (int i = 0; i < ds.Length; i++)
                    {
                        ds[i] += d[r][i];
                    }
                }

                CopyInto(tensor, TorchSharp.torch.tensor(ds));
                break;
            default:
                throw new ArgumentException($"dtype {tensor.dtype} is not float32 or float64", nameof(tensor));
        }
    }

    public void AllReduceSum(Span<double> values)
    {
        var all = Exchange("AllReduceSum(double)", values.ToArray());
        for (int i = 0; i < values.Length; i++)
        {
            double sum = all[0][i];
            for (int r = 1; r < all.Length; r++)
            {
                sum += all[r][i];
            }

            values[i] = sum;
        }
    }

    public void AllReduceMax(Span<double> values)
    {
        var all = Exchange("AllReduceMax(double)", values.ToArray());
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = all.Max(a => a[i]);
        }
    }

    public byte[] Broadcast(byte[]? data, int root = 0)
    {
        var all = Exchange($"Broadcast(root {root})", Rank == root ? data ?? throw new ArgumentNullException(nameof(data)) : []);
        return (byte[])all[root].Clone();
    }

    public IReadOnlyList<byte[]> AllGather(ReadOnlySpan<byte> local) => Exchange("AllGather", local.ToArray()).Select(b => (byte[])b.Clone()).ToList();

    public void Barrier() => Exchange("Barrier", Array.Empty<byte>());

    public void Abort(int exitCode, string message)
    {
        shared.Fail($"rank {Rank} aborted (exit {exitCode}): {message}");
        throw new RankAbortedException(shared.Failure!);
    }

    public void Dispose()
    {
    }

    private static void CopyInto(Tensor target, Tensor values)
    {
        using var noGrad = no_grad();
        target.copy_(values.view_as(target));
    }

    private static void Add(float[] acc, float[] x)
    {
        if (acc.Length != x.Length)
        {
            throw new InvalidOperationException($"ranks reduced buffers of {acc.Length} and {x.Length} values");
        }

        for (int i = 0; i < acc.Length; i++)
        {
            acc[i] += x[i];
        }
    }

    /// <summary>Puts this rank's contribution in its slot, waits for all, checks they called the same collective, reads every slot.</summary>
    private TItem[] Exchange<TItem>(string name, TItem item)
        where TItem : class
    {
        shared.Slots[Rank] = (name, item);
        shared.Wait();
        var slots = shared.Slots.ToArray();
        shared.Wait();
        var names = slots.Select(s => s.Name).Distinct().ToList();
        if (names.Count != 1)
        {
            shared.Fail($"ranks called different collectives: {string.Join(" / ", slots.Select((s, r) => $"rank {r} {s.Name}"))}");
            throw new RankAbortedException(shared.Failure!);
        }

        return [.. slots.Select(s => (TItem)s.Item!)];
    }

    private sealed class Rendezvous(int world) : IDisposable
    {
        private readonly Barrier barrier = new(world);
        private readonly CancellationTokenSource failed = new();

        public int World => world;

        public (string Name, object? Item)[] Slots { get; } = new (string, object?)[world];

        public string? Failure { get; private set; }

        public void Fail(string message)
        {
            lock (this)
            {
                Failure ??= message;
            }

            failed.Cancel();
        }

        public void Dispose()
        {
            barrier.Dispose();
            failed.Dispose();
        }

        public void Wait()
        {
            try
            {
                if (!barrier.SignalAndWait(TimeSpan.FromSeconds(120), failed.Token))
                {
                    Fail("a collective waited 120 s: some rank never arrived");
                    throw new RankAbortedException(Failure!);
                }
            }
            catch (OperationCanceledException)
            {
                throw new RankAbortedException(Failure ?? "aborted");
            }
        }
    }
}

/// <summary>Raised on every rank of a <see cref="ThreadedCommunicator"/> run once one rank aborted it.</summary>
internal sealed class RankAbortedException(string message) : Exception(message);
