using StableLayers.Core;
using StableLayers.Distributed.Native;

namespace StableLayers.Distributed.Tests;

/// <summary>Backend choice and its errors, in this (unlaunched) test process: nothing here initialises MPI.</summary>
public sealed class CommunicatorsTests
{
    private static readonly LaunchInfo NotLaunched = LaunchInfo.FromEnvironment(new Dictionary<string, string>());

    private static readonly LaunchInfo Launched = LaunchInfo.FromEnvironment(new Dictionary<string, string>
    {
        ["OMPI_COMM_WORLD_SIZE"] = "2",
        ["OMPI_COMM_WORLD_RANK"] = "1",
        ["OMPI_COMM_WORLD_LOCAL_RANK"] = "1",
        ["OMPI_COMM_WORLD_LOCAL_SIZE"] = "2",
    });

    [Theory]
    [InlineData(DistributedBackend.Auto, false)]
    [InlineData(DistributedBackend.Auto, true)]
    [InlineData(DistributedBackend.None, false)]
    public void Without_a_launcher_auto_and_none_are_a_single_process(DistributedBackend backend, bool cuda)
    {
        var comm = Communicators.Create(backend, cuda, NotLaunched);
        Assert.Same(SingleProcess.Instance, comm);
        Assert.Equal((0, 1, DistributedBackend.None), (comm.Rank, comm.WorldSize, comm.Backend));
    }

    [Fact]
    public void None_stays_single_even_under_a_launcher() =>
        Assert.Same(SingleProcess.Instance, Communicators.Create(DistributedBackend.None, cuda: false, Launched));

    [Theory]
    [InlineData(DistributedBackend.Mpi, false)]
    [InlineData(DistributedBackend.Nccl, true)]
    public void Mpi_or_nccl_without_a_launcher_is_bad_input(DistributedBackend backend, bool cuda)
    {
        var e = Assert.Throws<BadInputException>(() => Communicators.Create(backend, cuda, NotLaunched));
        Assert.Equal(Communicators.Option, e.FilePath);
        Assert.Contains("needs the ranks started by an MPI launcher", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Nccl_on_the_cpu_is_bad_input()
    {
        var e = Assert.Throws<BadInputException>(() => Communicators.Create(DistributedBackend.Nccl, cuda: false, Launched));
        Assert.Contains("nccl reduces CUDA tensors but the device is the CPU", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Nccl_without_libnccl_is_bad_input_before_mpi_starts()
    {
        // No NCCL on CI machines: the library check comes before MPI_Init, so this process stays MPI-free.
        var e = Assert.Throws<BadInputException>(() => Communicators.Create(DistributedBackend.Nccl, cuda: true, Launched));
        Assert.Equal("distributed.backend: libnccl.so.2 not found: install NCCL 2 (NVIDIA's libnccl2 package, or a directory with libnccl.so.2 on LD_LIBRARY_PATH) " +
                     "on every machine, or choose the mpi backend (CUDA tensors are then reduced through host memory)", e.Message);
    }

    [Fact]
    public void A_missing_library_names_every_name_tried()
    {
        var e = Assert.Throws<MpiUnavailableException>(() => MpiLibrary.Load(["libstablelayers-no-such-mpi.so.40", "libstablelayers-no-such-mpi.so"]));
        Assert.StartsWith("the MPI library was not found (libstablelayers-no-such-mpi.so.40: ", e.Message, StringComparison.Ordinal);
        Assert.Contains("; libstablelayers-no-such-mpi.so: ", e.Message, StringComparison.Ordinal);
        Assert.EndsWith("apt-get install openmpi-bin libopenmpi-dev)", e.Message, StringComparison.Ordinal);
        Assert.Contains("not found", Assert.Throws<NcclUnavailableException>(() => NcclLibrary.Load("libstablelayers-no-such-nccl.so.2")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_library_without_open_mpi_handles_is_refused_not_guessed()
    {
        // Any library lacking ompi_mpi_comm_world stands in for MPICH's libmpi.so.12 (integer handles).
        var e = Assert.Throws<MpiUnavailableException>(() => MpiLibrary.Load(["libz.so.1"]));
        Assert.StartsWith("libz.so.1 is not Open MPI (it has no ompi_mpi_comm_world): MPICH-ABI libraries", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_mpi_is_found_with_its_handles_and_version()
    {
        var mpi = MpiLibrary.Shared;
        Assert.Equal("libmpi.so.40", mpi.Path);
        Assert.StartsWith("Open MPI v", mpi.LibraryVersion(), StringComparison.Ordinal);
        Assert.All(new[] { mpi.CommWorld, mpi.Float, mpi.Double, mpi.Byte, mpi.Int, mpi.OpSum, mpi.OpMax, mpi.InfoNull, mpi.ErrorsReturn }, h => Assert.NotEqual(IntPtr.Zero, h));
        Assert.Equal(9, new[] { mpi.CommWorld, mpi.Float, mpi.Double, mpi.Byte, mpi.Int, mpi.OpSum, mpi.OpMax, mpi.InfoNull, mpi.ErrorsReturn }.Distinct().Count());
    }

    [Fact]
    public void Launch_info_reads_open_mpi_pmi_and_pmix_variables()
    {
        Assert.Equal(new LaunchInfo("Open MPI", 1, 2, 1, 2), Launched);
        Assert.True(Launched.IsLaunched);
        Assert.False(NotLaunched.IsLaunched);
        Assert.Equal(new LaunchInfo(null, null, null, null, null), NotLaunched);
        Assert.Equal(new LaunchInfo("PMI", 3, 8, 1, 4), LaunchInfo.FromEnvironment(new Dictionary<string, string>
        {
            ["PMI_SIZE"] = "8",
            ["PMI_RANK"] = "3",
            ["MPI_LOCALRANKID"] = "1",
            ["MPI_LOCALNRANKS"] = "4",
        }));
        Assert.Equal(new LaunchInfo("PMIx", 5, null, null, null), LaunchInfo.FromEnvironment(new Dictionary<string, string> { ["PMIX_RANK"] = "5" }));
        Assert.False(LaunchInfo.FromEnvironment(new Dictionary<string, string> { ["OMPI_COMM_WORLD_SIZE"] = "two" }).IsLaunched);
    }

    [Fact]
    public void Single_process_collectives_are_the_identity()
    {
        var comm = SingleProcess.Instance;
        double[] values = [1.5, -2];
        comm.AllReduceSum(values);
        comm.AllReduceMax(values);
        Assert.Equal([1.5, -2], values);
        Assert.Equal(new byte[] { 7, 8 }, comm.Broadcast([7, 8]));
        Assert.Equal(new byte[] { 9 }, Assert.Single(comm.AllGather([9])));
    }
}
