using StableLayers.Distributed.Native;
using TorchSharp;

namespace StableLayers.Distributed;

/// <summary>
/// Tensors on CUDA reduced by NCCL; bootstrap and host values through MPI (the way Horovod sets NCCL up): rank 0 asks
/// NCCL for a unique id, MPI broadcasts its 128 bytes, and every rank joins with ncclCommInitRank on the CUDA device
/// numbered by its local rank (one rank per GPU).
/// <para>
/// Stream: TorchSharp exposes no handle to libtorch's current stream, and it never changes it, so libtorch's kernels
/// run on the legacy default stream. NCCL is given the same stream (null), which orders the all-reduce after the
/// backward pass that wrote the gradients, and the call waits for that stream before returning, so the caller can
/// read the result or hand it to the optimiser without any further synchronisation.
/// </para>
/// <para>
/// Untested here: no machine of this project's CI has a GPU or NCCL. The CPU path (<see cref="MpiCommunicator"/>) is
/// the tested one; this class is written against nccl.h and kept small.
/// </para>
/// </summary>
public sealed unsafe class NcclCommunicator : ICommunicator
{
    private readonly MpiCommunicator _mpi;
    private readonly NcclLibrary _nccl;
    private readonly CudaDriver _cuda;
    private readonly IntPtr _context;
    private readonly object _callLock = new();
    private IntPtr _comm;

    private NcclCommunicator(MpiCommunicator mpi, NcclLibrary nccl, CudaDriver cuda)
    {
        _mpi = mpi;
        _nccl = nccl;
        _cuda = cuda;
        // A rank that cannot use its device tells the others (through a max-reduce of a flag) before anyone waits in
        // the bootstrap broadcast below, so every rank fails instead of some hanging.
        Device = mpi.LocalRank;
        string? problem = null;
        try
        {
            int devices = cuda.DeviceCount();
            if (Device >= devices)
            {
                throw new InvalidOperationException(
                    $"rank {mpi.Rank} is local rank {Device} on its machine, which has {devices} CUDA device(s): launch at most {devices} rank(s) per machine (one per GPU)");
            }

            _context = cuda.PrimaryContext(Device);
            MakeCurrent();
        }
        catch (InvalidOperationException e)
        {
            problem = e.Message;
        }

        Span<double> failed = [problem is null ? 0 : 1];
        mpi.AllReduceMax(failed);
        if (problem is not null)
        {
            throw new InvalidOperationException(problem);
        }

        if (failed[0] > 0)
        {
            throw new InvalidOperationException("another rank could not select its CUDA device (see its error)");
        }

        // Rank 0 broadcasts the id, or no bytes when NCCL could not make one, so that no rank waits for it forever.
        var id = default(NcclLibrary.UniqueId);
        int made = mpi.Rank == 0 ? nccl.GetUniqueId(&id) : NcclLibrary.Success;
        var bytes = mpi.Broadcast(mpi.Rank == 0 ? (made == NcclLibrary.Success ? id.ToBytes() : []) : null, root: 0);
        nccl.Check(made, "ncclGetUniqueId");
        if (bytes.Length == 0)
        {
            throw new InvalidOperationException("rank 0 could not create the NCCL unique id (see rank 0's error)");
        }

        id = NcclLibrary.UniqueId.FromBytes(bytes);
        IntPtr comm = IntPtr.Zero;
        nccl.Check(nccl.CommInitRank(&comm, mpi.WorldSize, id, mpi.Rank), "ncclCommInitRank");
        _comm = comm;
    }

    public int Rank => _mpi.Rank;

    public int WorldSize => _mpi.WorldSize;

    /// <summary>The CUDA device this rank reduces on (its local rank).</summary>
    public int Device { get; }

    public DistributedBackend Backend => DistributedBackend.Nccl;

    /// <summary>
    /// Joins the NCCL communicator of the MPI world <paramref name="mpi"/>. Collective over all ranks. Throws
    /// <see cref="NcclUnavailableException"/> when libnccl.so.2 or the CUDA driver is missing.
    /// </summary>
    public static NcclCommunicator Create(MpiCommunicator mpi)
    {
        ArgumentNullException.ThrowIfNull(mpi);
        return new NcclCommunicator(mpi, NcclLibrary.Load(), CudaDriver.Load());
    }

    public void AllReduceSum(torch.Tensor tensor)
    {
        TensorMemory.RequireReducible(tensor, "NCCL");
        if (tensor.device_type != DeviceType.CUDA || tensor.device_index != Device)
        {
            throw new ArgumentException($"NCCL all-reduce on rank {Rank} reduces tensors on cuda:{Device}, got a tensor on {tensor.device}", nameof(tensor));
        }

        long count = tensor.numel();
        if (count == 0)
        {
            return;
        }

        int type = tensor.dtype == torch.ScalarType.Float64 ? NcclLibrary.Float64 : NcclLibrary.Float32;
        lock (_callLock)
        {
            ObjectDisposedException.ThrowIf(_comm == IntPtr.Zero, this);
            // The CUDA context is per thread and async code may have moved threads since the last call.
            MakeCurrent();
            void* data = (void*)TensorMemory.DataPointer(tensor);
            _nccl.Check(_nccl.AllReduce(data, data, (nuint)count, type, NcclLibrary.Sum, _comm, IntPtr.Zero), "ncclAllReduce");
            CudaDriver.Check(_cuda.StreamSynchronize(IntPtr.Zero), "cuStreamSynchronize(default stream) after ncclAllReduce");
        }
    }

    public void AllReduceSum(Span<double> values) => _mpi.AllReduceSum(values);

    public void AllReduceMax(Span<double> values) => _mpi.AllReduceMax(values);

    public byte[] Broadcast(byte[]? data, int root = 0) => _mpi.Broadcast(data, root);

    public IReadOnlyList<byte[]> AllGather(ReadOnlySpan<byte> local) => _mpi.AllGather(local);

    public void Barrier() => _mpi.Barrier();

    /// <summary>Aborts NCCL's pending work (so no kernel waits on a dead peer), then the MPI job.</summary>
    public void Abort(int exitCode, string message)
    {
        if (_comm != IntPtr.Zero)
        {
            _nccl.CommAbort(_comm);
        }

        _mpi.Abort(exitCode, message);
    }

    /// <summary>Destroys the NCCL communicator, then finalizes MPI. Collective: every rank must dispose.</summary>
    public void Dispose()
    {
        lock (_callLock)
        {
            if (_comm != IntPtr.Zero)
            {
                MakeCurrent();
                _nccl.Check(_nccl.CommDestroy(_comm), "ncclCommDestroy");
                _comm = IntPtr.Zero;
            }
        }

        _mpi.Dispose();
    }

    private void MakeCurrent() => CudaDriver.Check(_cuda.CtxSetCurrent(_context), "cuCtxSetCurrent");
}
