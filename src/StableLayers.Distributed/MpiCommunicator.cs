using StableLayers.Distributed.Native;
using TorchSharp;

namespace StableLayers.Distributed;

/// <summary>
/// The ranks of an <c>mpirun</c> launch, reducing host memory with Open MPI (docs/DISTRIBUTED.md).
/// <para>
/// Thread level: MPI_THREAD_SERIALIZED. The trainer is async, so its continuations (and with them these calls) may
/// run on any thread-pool thread; FUNNELED would require every call on the thread that called MPI_Init, which .NET
/// cannot promise. The trainer never issues two collectives at once, so MULTIPLE (and the locking it costs inside
/// MPI) is not needed; a lock here turns an accidental concurrent call into a serialised one instead of corrupt
/// state. MPI asks MPI_Finalize to run on the initialising thread; Open MPI does not check, and <see cref="Dispose"/>
/// calls it from whichever thread disposes.
/// </para>
/// <para>
/// Errors: MPI_ERRORS_RETURN is installed on MPI_COMM_WORLD, so a failing call throws
/// <see cref="InvalidOperationException"/> with MPI's message instead of killing the job from inside the library.
/// </para>
/// </summary>
public sealed unsafe class MpiCommunicator : ICommunicator
{
    private static readonly object InitLock = new();
    private static MpiCommunicator? _instance;
    private static bool _finalized;

    private readonly MpiLibrary _mpi;
    private readonly object _callLock = new();
    private bool _disposed;

    private MpiCommunicator(MpiLibrary mpi)
    {
        _mpi = mpi;
        int initialized = 0;
        mpi.Check(mpi.Initialized(&initialized), "MPI_Initialized");
        if (initialized == 0)
        {
            int provided = 0;
            mpi.Check(mpi.InitThread(null, null, MpiLibrary.ThreadSerialized, &provided), "MPI_Init_thread");
            if (provided < MpiLibrary.ThreadSerialized)
            {
                mpi.Finalize();
                throw new MpiUnavailableException(
                    $"{mpi.Path} provides MPI thread level {provided}, below MPI_THREAD_SERIALIZED ({MpiLibrary.ThreadSerialized}) which async .NET code needs");
            }
        }

        mpi.Check(mpi.CommSetErrhandler(mpi.CommWorld, mpi.ErrorsReturn), "MPI_Comm_set_errhandler");
        int rank = 0, size = 0;
        mpi.Check(mpi.CommRank(mpi.CommWorld, &rank), "MPI_Comm_rank");
        mpi.Check(mpi.CommSize(mpi.CommWorld, &size), "MPI_Comm_size");
        Rank = rank;
        WorldSize = size;
        LocalRank = FindLocalRank();
        LibraryVersion = mpi.LibraryVersion();
    }

    /// <summary>
    /// Largest element count one MPI call carries (MPI counts are C ints). Tests lower it to run the chunked path on
    /// small buffers; it must be the same on every rank.
    /// </summary>
    internal static int MaxElementsPerCall { get; set; } = int.MaxValue;

    /// <summary>
    /// Largest total of bytes one MPI_Allgatherv carries (its displacements are C ints); above it every rank's bytes
    /// are broadcast from that rank in turn. Lowered by tests; the same on every rank.
    /// </summary>
    internal static long MaxAllGathervBytes { get; set; } = int.MaxValue;

    public int Rank { get; }

    public int WorldSize { get; }

    /// <summary>Rank among the processes on this machine (picks the CUDA device for NCCL).</summary>
    public int LocalRank { get; }

    /// <summary>MPI_Get_library_version, e.g. "Open MPI v4.1.4, ...".</summary>
    public string LibraryVersion { get; }

    public DistributedBackend Backend => DistributedBackend.Mpi;

    /// <summary>
    /// Initialises MPI (once per process; MPI cannot be initialised again after MPI_Finalize) and returns the world.
    /// Throws <see cref="MpiUnavailableException"/> when no Open MPI library can be loaded.
    /// </summary>
    public static MpiCommunicator Initialize()
    {
        lock (InitLock)
        {
            if (_instance is { _disposed: false })
            {
                return _instance;
            }

            if (_finalized)
            {
                throw new InvalidOperationException("MPI was finalized in this process and cannot be initialised again");
            }

            return _instance = new MpiCommunicator(MpiLibrary.Shared);
        }
    }

    /// <summary>
    /// Sums in place over all ranks. CPU tensors are reduced in their own memory; a CUDA tensor is copied to the host,
    /// reduced there and copied back (two device-host copies of the whole tensor per call, on top of the network: use
    /// <see cref="NcclCommunicator"/> on GPUs).
    /// </summary>
    public void AllReduceSum(torch.Tensor tensor)
    {
        TensorMemory.RequireReducible(tensor, "MPI");
        if (tensor.device_type == DeviceType.CUDA)
        {
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            var host = tensor.cpu();
            AllReduceHost(host);
            tensor.copy_(host);
            return;
        }

        if (tensor.device_type != DeviceType.CPU)
        {
            throw new ArgumentException($"MPI all-reduce reduces CPU tensors (CUDA ones through a host copy), got a tensor on {tensor.device}", nameof(tensor));
        }

        AllReduceHost(tensor);
    }

    public void AllReduceSum(Span<double> values) => ReduceDoubles(values, _mpi.OpSum, "MPI_Allreduce(sum)");

    public void AllReduceMax(Span<double> values) => ReduceDoubles(values, _mpi.OpMax, "MPI_Allreduce(max)");

    public byte[] Broadcast(byte[]? data, int root = 0)
    {
        CheckRoot(root);
        lock (_callLock)
        {
            ThrowIfDisposed();
            return BroadcastLocked(data, root);
        }
    }

    public IReadOnlyList<byte[]> AllGather(ReadOnlySpan<byte> local)
    {
        lock (_callLock)
        {
            ThrowIfDisposed();
            var lengths = new long[WorldSize];
            long mine = local.Length;
            fixed (long* all = lengths)
            {
                _mpi.Check(_mpi.Allgather(&mine, sizeof(long), _mpi.Byte, all, sizeof(long), _mpi.Byte, _mpi.CommWorld), "MPI_Allgather(lengths)");
            }

            long total = lengths.Sum();
            var result = new byte[WorldSize][];
            if (total > MaxAllGathervBytes)
            {
                // Displacements past int.MaxValue: each rank broadcasts its own bytes in turn (chunked).
                var own = local.ToArray();
                for (int r = 0; r < WorldSize; r++)
                {
                    result[r] = BroadcastLocked(r == Rank ? own : null, r);
                }

                return result;
            }

            var counts = lengths.Select(l => (int)l).ToArray();
            var displacements = new int[WorldSize];
            for (int r = 1; r < WorldSize; r++)
            {
                displacements[r] = displacements[r - 1] + counts[r - 1];
            }

            // One extra byte keeps the pinned buffer non-empty (a zero-length array pins to a null pointer).
            var gathered = new byte[total + 1];
            fixed (byte* send = local)
            fixed (byte* receive = gathered)
            fixed (int* c = counts)
            fixed (int* d = displacements)
            {
                _mpi.Check(_mpi.Allgatherv(send, local.Length, _mpi.Byte, receive, c, d, _mpi.Byte, _mpi.CommWorld), "MPI_Allgatherv");
            }

            for (int r = 0; r < WorldSize; r++)
            {
                result[r] = gathered.AsSpan(displacements[r], counts[r]).ToArray();
            }

            return result;
        }
    }

    public void Barrier()
    {
        lock (_callLock)
        {
            ThrowIfDisposed();
            _mpi.Check(_mpi.Barrier(_mpi.CommWorld), "MPI_Barrier");
        }
    }

    /// <summary>
    /// Prints <paramref name="message"/> on stderr and calls MPI_Abort, after which mpirun kills every rank and exits
    /// non-zero. Takes no lock: another thread of this process may be blocked in a collective that will never finish.
    /// </summary>
    public void Abort(int exitCode, string message)
    {
        Console.Out.Flush();
        Console.Error.WriteLine(message);
        Console.Error.Flush();
        _mpi.AbortFn(_mpi.CommWorld, exitCode);
        Environment.Exit(exitCode);
    }

    /// <summary>MPI_Finalize (once; collective: every rank must dispose).</summary>
    public void Dispose()
    {
        lock (InitLock)
        {
            lock (_callLock)
            {
                if (_disposed)
                {
                    return;
                }

                _disposed = true;
                int finalized = 0;
                if (_mpi.Finalized(&finalized) == MpiLibrary.Success && finalized == 0)
                {
                    _mpi.Check(_mpi.Finalize(), "MPI_Finalize");
                }

                _finalized = true;
            }
        }
    }

    private void AllReduceHost(torch.Tensor tensor)
    {
        long count = tensor.numel();
        if (count == 0)
        {
            return;
        }

        int elementSize = TensorMemory.ElementSize(tensor);
        var type = elementSize == 8 ? _mpi.Double : _mpi.Float;
        lock (_callLock)
        {
            ThrowIfDisposed();
            AllReduceLocked((byte*)TensorMemory.DataPointer(tensor), count, elementSize, type, _mpi.OpSum, "MPI_Allreduce(sum)");
        }
    }

    private void ReduceDoubles(Span<double> values, IntPtr op, string call)
    {
        if (values.IsEmpty)
        {
            return;
        }

        lock (_callLock)
        {
            ThrowIfDisposed();
            fixed (double* p = values)
            {
                AllReduceLocked((byte*)p, values.Length, sizeof(double), _mpi.Double, op, call);
            }
        }
    }

    private void AllReduceLocked(byte* data, long count, int elementSize, IntPtr type, IntPtr op, string call)
    {
        for (long done = 0; done < count;)
        {
            int n = (int)Math.Min(MaxElementsPerCall, count - done);
            _mpi.Check(_mpi.Allreduce(MpiLibrary.InPlace, data + (done * elementSize), n, type, op, _mpi.CommWorld), call);
            done += n;
        }
    }

    private byte[] BroadcastLocked(byte[]? data, int root)
    {
        long length = 0;
        if (Rank == root)
        {
            ArgumentNullException.ThrowIfNull(data);
            length = data.LongLength;
        }

        _mpi.Check(_mpi.Bcast(&length, sizeof(long), _mpi.Byte, root, _mpi.CommWorld), "MPI_Bcast(length)");
        var buffer = Rank == root ? data! : new byte[length];
        fixed (byte* p = buffer)
        {
            for (long done = 0; done < length;)
            {
                int n = (int)Math.Min(MaxElementsPerCall, length - done);
                _mpi.Check(_mpi.Bcast(p + done, n, _mpi.Byte, root, _mpi.CommWorld), "MPI_Bcast");
                done += n;
            }
        }

        return Rank == root ? (byte[])buffer.Clone() : buffer;
    }

    private int FindLocalRank()
    {
        if (LaunchInfo.Current.LocalRank is int fromLauncher)
        {
            return fromLauncher;
        }

        // Launchers that do not export it: rank within the shared-memory (same machine) sub-communicator.
        IntPtr node = IntPtr.Zero;
        _mpi.Check(_mpi.CommSplitType(_mpi.CommWorld, MpiLibrary.CommTypeShared, Rank, _mpi.InfoNull, &node), "MPI_Comm_split_type");
        int local = 0;
        _mpi.Check(_mpi.CommRank(node, &local), "MPI_Comm_rank(node)");
        _mpi.Check(_mpi.CommFree(&node), "MPI_Comm_free");
        return local;
    }

    private void CheckRoot(int root)
    {
        if (root < 0 || root >= WorldSize)
        {
            throw new ArgumentOutOfRangeException(nameof(root), root, $"root must be a rank 0..{WorldSize - 1}");
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);
}
