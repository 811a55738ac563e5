using TorchSharp;

namespace StableLayers.Distributed;

/// <summary>
/// The ranks of one data-parallel run and the collectives the trainer needs. Every rank calls every collective in
/// the same order with the same sizes (MPI's rule); a rank that does not is a bug, not bad input. Implementations:
/// <see cref="SingleProcess"/> (world size 1), MPI (host buffers, any MPI launched by <c>mpirun</c>) and NCCL over
/// MPI (device tensors on CUDA, bootstrapped through MPI as Horovod does).
/// </summary>
public interface ICommunicator : IDisposable
{
    /// <summary>This process's rank, 0..<see cref="WorldSize"/> - 1; rank 0 writes logs, grids and checkpoints.</summary>
    int Rank { get; }

    /// <summary>Number of ranks.</summary>
    int WorldSize { get; }

    /// <summary>The backend that reduces tensors (<see cref="DistributedBackend.None"/> for a single process).</summary>
    DistributedBackend Backend { get; }

    /// <summary>
    /// Sums a contiguous float32 or float64 tensor element-wise over all ranks, in place; afterwards every rank holds
    /// the same values. The tensor lives on the device the backend reduces on (the CPU for MPI, CUDA for NCCL).
    /// </summary>
    void AllReduceSum(torch.Tensor tensor);

    /// <summary>Sums host values element-wise over all ranks, in place (counts, statistics).</summary>
    void AllReduceSum(Span<double> values);

    /// <summary>Element-wise maximum of host values over all ranks, in place (flags: stop requested, non-finite).</summary>
    void AllReduceMax(Span<double> values);

    /// <summary>Rank <paramref name="root"/>'s bytes on every rank (<paramref name="data"/> is ignored elsewhere).</summary>
    byte[] Broadcast(byte[]? data, int root = 0);

    /// <summary>Every rank's bytes (any length each), indexed by rank, on every rank.</summary>
    IReadOnlyList<byte[]> AllGather(ReadOnlySpan<byte> local);

    /// <summary>Waits until every rank arrives.</summary>
    void Barrier();

    /// <summary>
    /// Stops every rank of the run (MPI_Abort) after printing <paramref name="message"/> on this rank's stderr; used
    /// when one rank fails and the others would otherwise wait in a collective forever. Does not return.
    /// </summary>
    void Abort(int exitCode, string message);
}

/// <summary>Which engine reduces gradients across ranks (config <c>[distributed] backend</c>).</summary>
public enum DistributedBackend
{
    /// <summary>MPI when the process was launched by mpirun (with NCCL for CUDA tensors), else a single process.</summary>
    Auto,

    /// <summary>One process, no communication.</summary>
    None,

    /// <summary>MPI for everything; CUDA tensors are staged through host memory.</summary>
    Mpi,

    /// <summary>NCCL for tensors on CUDA devices, MPI for bootstrap and host values.</summary>
    Nccl,
}
