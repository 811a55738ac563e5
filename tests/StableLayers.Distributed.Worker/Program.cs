using System.Text.Json;
using StableLayers.Core;
using StableLayers.Distributed;
using TorchSharp;

// One rank of an MPI test (tests/StableLayers.Distributed.Tests/MpiCollectiveTests.cs starts it under mpirun):
//   collectives OUTDIR BACKEND   (mpi or auto) runs every collective on rank-dependent inputs and writes what it got to OUTDIR/rank{R}.json;
//                        the test holds the expected values
//   abort                the last rank aborts while the others wait in a barrier
//   nccl                 asks for the NCCL backend (no NCCL here: prints the BadInputException), then for auto on
//                        CUDA (falls back to MPI with a note), and exits 2
if (args.Length < 1)
{
    Console.Error.WriteLine("usage: StableLayers.Distributed.Worker collectives OUTDIR mpi|auto | abort | nccl");
    return 64;
}

switch (args[0])
{
    case "collectives":
        return Collectives(args[1], Enum.Parse<DistributedBackend>(args[2], ignoreCase: true));
    case "abort":
        {
            using var comm = Communicators.Create(DistributedBackend.Mpi, cuda: false);
            if (comm.Rank == comm.WorldSize - 1)
            {
                Thread.Sleep(300);
                comm.Abort(3, $"rank {comm.Rank}: deliberate failure for the abort test");
            }

            comm.Barrier();
            Console.WriteLine($"rank {comm.Rank} passed the barrier (it should have been stopped)");
            return 0;
        }

    case "nccl":
        {
            // The nccl backend without libnccl.so.2 fails before MPI starts; auto on CUDA then falls back to MPI.
            try
            {
                using var nccl = Communicators.Create(DistributedBackend.Nccl, cuda: true);
                Console.WriteLine($"rank {nccl.Rank}: NCCL communicator created");
                return 0;
            }
            catch (BadInputException e)
            {
                Console.Error.WriteLine(e.Message);
            }

            using var comm = Communicators.Create(DistributedBackend.Auto, cuda: true);
            comm.Barrier();
            Console.WriteLine($"rank {comm.Rank}: auto on cuda chose {comm.Backend}");
            return 2;
        }

    default:
        Console.Error.WriteLine($"unknown scenario {args[0]}");
        return 64;
}

static int Collectives(string outDir, DistributedBackend backend)
{
    // Loads libtorch (the other scenarios stay without it, which keeps their launches short).
    torch.set_num_threads(1);
    using var comm = Communicators.Create(backend, cuda: false);
    int r = comm.Rank;
    var result = new Dictionary<string, object>
    {
        ["rank"] = r,
        ["size"] = comm.WorldSize,
        ["backend"] = comm.Backend.ToString(),
        ["localRank"] = ((MpiCommunicator)comm).LocalRank,
    };

    // Host values.
    double[] sum = [r + 1, 0.5 * (r + 1), -r, 1e-3 * r];
    comm.AllReduceSum(sum);
    result["sum"] = sum;
    double[] max = [r, -r, r == 0 ? 7.5 : 2, -1];
    comm.AllReduceMax(max);
    result["max"] = max;

    // Tensors: value i on rank r is i * (r + 1) + r (exact in float32 for these sizes).
    using (var scope = torch.NewDisposeScope())
    {
        var f32 = torch.arange(1000, dtype: torch.ScalarType.Float32) * (r + 1) + r;
        comm.AllReduceSum(f32);
        result["f32"] = f32.data<float>().ToArray();

        var f64 = (torch.arange(300, dtype: torch.ScalarType.Float64) * (r + 1) + r) / 3.0;
        comm.AllReduceSum(f64);
        result["f64"] = f64.data<double>().ToArray();

        // A contiguous slice that starts inside its storage: only elements 3..6 of the parent change.
        var parent = torch.full(10, r + 1.0, dtype: torch.ScalarType.Float32);
        var slice = parent.narrow(0, 3, 4);
        comm.AllReduceSum(slice);
        result["sliceParent"] = parent.data<float>().ToArray();

        // A 2-D tensor that requires grad (a leaf parameter's data is reduced like a gradient).
        var leaf = (torch.ones(3, 5, dtype: torch.ScalarType.Float32) * (r + 2)).requires_grad_(true);
        comm.AllReduceSum(leaf);
        result["leaf"] = leaf.detach().data<float>().ToArray();

        // Chunked path: 103 values in calls of at most 7.
        MpiCommunicator.MaxElementsPerCall = 7;
        var chunked = torch.arange(103, dtype: torch.ScalarType.Float32) * (r + 1) + r;
        comm.AllReduceSum(chunked);
        result["chunkedF32"] = chunked.data<float>().ToArray();
        double[] chunkedHost = Enumerable.Range(0, 23).Select(i => (double)(i * (r + 1)) + r).ToArray();
        comm.AllReduceSum(chunkedHost);
        result["chunkedSum"] = chunkedHost;
        double[] chunkedMax = Enumerable.Range(0, 23).Select(i => (double)((i + r) % 5)).ToArray();
        comm.AllReduceMax(chunkedMax);
        result["chunkedMax"] = chunkedMax;
        var chunkedBroadcast = comm.Broadcast(r == 0 ? Enumerable.Range(0, 100).Select(i => (byte)(i * 7)).ToArray() : null, 0);
        result["chunkedBroadcast"] = chunkedBroadcast.Select(b => (int)b).ToArray();
        MpiCommunicator.MaxElementsPerCall = int.MaxValue;

        var errors = new Dictionary<string, string>();
        void Expect(string name, Action action)
        {
            try
            {
                action();
                errors[name] = "no exception";
            }
            catch (ArgumentException e)
            {
                errors[name] = e.Message;
            }
        }

        Expect("int32", () => comm.AllReduceSum(torch.ones(4, dtype: torch.ScalarType.Int32)));
        Expect("bfloat16", () => comm.AllReduceSum(torch.ones(4, dtype: torch.ScalarType.BFloat16)));
        Expect("transposed", () => comm.AllReduceSum(torch.ones(3, 4).t()));
        Expect("meta", () => comm.AllReduceSum(torch.ones(4, device: new torch.Device("meta"))));
        result["errors"] = errors;
    }

    // Broadcasts: from rank 0; from the last rank while the others pass data that must be ignored; an empty array.
    result["broadcast0"] = System.Text.Encoding.UTF8.GetString(comm.Broadcast(r == 0 ? "hello from rank 0"u8.ToArray() : null));
    int last = comm.WorldSize - 1;
    result["broadcastLast"] = System.Text.Encoding.UTF8.GetString(comm.Broadcast(System.Text.Encoding.UTF8.GetBytes($"data of rank {r}"), last));
    result["broadcastEmpty"] = comm.Broadcast(r == 0 ? [] : null).Length;

    // All-gather of different lengths (rank r sends 3r + 2 bytes of value r + 1, rank 1 none), then the same
    // through the per-rank broadcast path used above MaxAllGathervBytes.
    byte[] mine = Enumerable.Repeat((byte)(r + 1), r == 1 ? 0 : (3 * r) + 2).ToArray();
    result["gathered"] = comm.AllGather(mine).Select(b => b.Select(x => (int)x).ToArray()).ToArray();
    MpiCommunicator.MaxAllGathervBytes = 1;
    result["gatheredByBroadcast"] = comm.AllGather(mine).Select(b => b.Select(x => (int)x).ToArray()).ToArray();
    MpiCommunicator.MaxAllGathervBytes = int.MaxValue;

    comm.Barrier();
    Directory.CreateDirectory(outDir);
    string path = Path.Combine(outDir, $"rank{r}.json");
    AtomicFile.WriteAllText(path, JsonSerializer.Serialize(result));
    return 0;
}
