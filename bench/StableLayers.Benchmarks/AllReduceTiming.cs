using System.Diagnostics;
using StableLayers.Distributed;
using StableLayers.Model;
using StableLayers.Model.Lora;
using static TorchSharp.torch;

namespace StableLayers.Benchmarks;

/// <summary>
/// `allreduce` mode: the gradient all-reduce of one GRPO step, for the tiny base's LoRA r16 adapters and for the
/// released model's (attention and feed-forward of all 60 blocks, ~100M values), float32, timed on every rank as
/// the median over calls (each call after a barrier, so a rank's time includes waiting for the slowest).
/// Run it under the launcher, from the repository root, after a Release build:
///   OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1 \
///     mpirun -np 2 --oversubscribe --bind-to none \
///     dotnet bench/StableLayers.Benchmarks/bin/Release/net10.0/StableLayers.Benchmarks.dll allreduce [TINY_CALLS] [FULL_CALLS]
/// (the two ALLOW_RUN_AS_ROOT variables only where it runs as root). Rank 0 prints; algorithm bandwidth is the
/// tensor's bytes over the time, bus bandwidth the bytes each rank moves in a ring all-reduce, 2 (n - 1) / n of them.
/// </summary>
public static class AllReduceTiming
{
    public static int Run(int tinyCalls, int fullCalls)
    {
        set_num_threads(1);
        using var comm = Communicators.Create(DistributedBackend.Auto, cuda: false);
        var lora = new LoraConfig();
        var cases = new (string Name, long Count, int Calls)[]
        {
            ("tiny base LoRA r16", lora.TrainableParameterCount(LayeredModelConfig.Load("models/tiny-base/model_index.json").Transformer), tinyCalls),
            ("full model LoRA r16", lora.TrainableParameterCount(LayeredModelConfig.Load("configs/qwen-image-layered.json").Transformer), fullCalls),
        };

        if (comm.Rank == 0)
        {
            Console.WriteLine($"all-reduce (sum, float32, in place) over {comm.WorldSize} rank(s), backend {comm.Backend}, 1 torch thread each, " +
                              $"OMPI_MCA_mpi_yield_when_idle={Environment.GetEnvironmentVariable("OMPI_MCA_mpi_yield_when_idle") ?? "(unset)"}");
        }

        foreach (var (name, count, calls) in cases)
        {
            using var scope = NewDisposeScope();
            var tensor = empty(count, dtype: ScalarType.Float32);
            var times = new List<double>();
            for (int call = 0; call <= calls; call++)
            {
                tensor.fill_(comm.Rank + 1);
                comm.Barrier();
                var watch = Stopwatch.StartNew();
                comm.AllReduceSum(tensor);
                double ms = watch.Elapsed.TotalMilliseconds;
                if (call > 0)
                {
                    times.Add(ms);
                }
            }

            // Sanity: every element must be the sum of (rank + 1), on every rank (max of the error over ranks).
            double expected = comm.WorldSize * (comm.WorldSize + 1) / 2.0;
            Span<double> error = [(tensor - expected).abs().max().item<float>()];
            comm.AllReduceMax(error);

            times.Sort();
            double median = times[times.Count / 2];
            Span<double> slowest = [median];
            comm.AllReduceMax(slowest);
            if (comm.Rank == 0)
            {
                double bytes = count * 4.0;
                double bus = comm.WorldSize > 1 ? 2.0 * (comm.WorldSize - 1) / comm.WorldSize : 0;
                Console.WriteLine($"  {name,-20} {count,11:N0} values ({bytes / 1e6,7:F1} MB): median {median,9:F3} ms (slowest rank {slowest[0]:F3}, min {times[0]:F3}) over {calls} calls; " +
                                  $"{bytes / (median / 1e3) / 1e9:F2} GB/s algorithm, {bus * bytes / (median / 1e3) / 1e9:F2} GB/s bus; max error {error[0]}");
            }
        }

        return 0;
    }
}
