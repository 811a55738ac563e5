using StableLayers.Core;
using StableLayers.Distributed.Native;

namespace StableLayers.Distributed;

/// <summary>Chooses and starts the communicator for a run (config <c>[distributed] backend</c>).</summary>
public static class Communicators
{
    /// <summary>The option named in <see cref="BadInputException"/>s from <see cref="Create"/>.</summary>
    public const string Option = "distributed.backend";

    /// <summary>
    /// <see cref="DistributedBackend.Auto"/>: MPI when an MPI launcher started the process (NCCL for the tensors when
    /// <paramref name="cuda"/> and libnccl.so.2 is present; without NCCL a note on rank 0's stderr and MPI through host
    /// memory), else <see cref="SingleProcess"/>. <see cref="DistributedBackend.Mpi"/> / <see cref="DistributedBackend.Nccl"/>
    /// outside a launcher, or with their library missing, are a <see cref="BadInputException"/> on
    /// <see cref="Option"/>. Creating MPI or NCCL communicators is collective: every rank calls this.
    /// </summary>
    public static ICommunicator Create(DistributedBackend backend, bool cuda) => Create(backend, cuda, LaunchInfo.Current);

    internal static ICommunicator Create(DistributedBackend backend, bool cuda, LaunchInfo launch)
    {
        ArgumentNullException.ThrowIfNull(launch);
        switch (backend)
        {
            case DistributedBackend.None:
                return SingleProcess.Instance;
            case DistributedBackend.Auto when !launch.IsLaunched:
                return SingleProcess.Instance;
            case DistributedBackend.Auto:
                {
                    // Probe NCCL before MPI_Init so that a missing library costs nothing but the note.
                    string? ncclProblem = null;
                    if (cuda)
                    {
                        try
                        {
                            NcclLibrary.Load();
                        }
                        catch (NcclUnavailableException e)
                        {
                            ncclProblem = e.Message;
                        }
                    }

                    var mpi = StartMpi(launch);
                    if (!cuda)
                    {
                        return mpi;
                    }

                    if (ncclProblem is null)
                    {
                        return StartNccl(mpi);
                    }

                    if (mpi.Rank == 0)
                    {
                        Console.Error.WriteLine($"note: {ncclProblem}; all-reduce runs on MPI through host memory");
                    }

                    return mpi;
                }

            case DistributedBackend.Mpi:
                RequireLauncher(backend, launch);
                return StartMpi(launch);
            case DistributedBackend.Nccl:
                {
                    if (!cuda)
                    {
                        throw new BadInputException(Option, "nccl reduces CUDA tensors but the device is the CPU: use mpi (or auto)");
                    }

                    RequireLauncher(backend, launch);
                    try
                    {
                        NcclLibrary.Load();
                    }
                    catch (NcclUnavailableException e)
                    {
                        throw new BadInputException(Option, e.Message, e);
                    }

                    return StartNccl(StartMpi(launch));
                }

            default:
                throw new ArgumentOutOfRangeException(nameof(backend), backend, null);
        }
    }

    private static void RequireLauncher(DistributedBackend backend, LaunchInfo launch)
    {
        if (!launch.IsLaunched)
        {
            throw new BadInputException(Option,
                $"{backend.ToString().ToLowerInvariant()} needs the ranks started by an MPI launcher (e.g. mpirun -np 2 stablelayers train ...); " +
                "this process was not (no OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK): use auto or none for one process");
        }
    }

    private static MpiCommunicator StartMpi(LaunchInfo launch)
    {
        try
        {
            return MpiCommunicator.Initialize();
        }
        catch (MpiUnavailableException e)
        {
            throw new BadInputException(Option, $"launched by {launch.Launcher} but {e.Message}", e);
        }
    }

    private static NcclCommunicator StartNccl(MpiCommunicator mpi)
    {
        try
        {
            return NcclCommunicator.Create(mpi);
        }
        catch (NcclUnavailableException e)
        {
            throw new BadInputException(Option, e.Message, e);
        }
    }
}
