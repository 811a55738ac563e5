using System.Text.Json;
using StableLayers.Judges.Rubric;
using StableLayers.Model;
using StableLayers.Training.Grpo;

namespace StableLayers.Benchmarks;

/// <summary>
/// `grpo-step` mode: a few GRPO steps of the tiny preset at G = 8, N = 5 (one image per step, so one
/// mini-batch), the time split (sampling / judging / update), the update's achieved FLOP/s (analytic
/// transformer count x 3 for forward + backward) against a float32 matmul timed in the same process, and
/// the process's peak RSS, and the host synchronisations of each step (every device-to-host transfer goes
/// through <see cref="HostReads"/>, which counts them).
/// </summary>
public static class GrpoStepTiming
{
    public static async Task RunAsync(string modelDir, int steps, ComputeDevice? device = null)
    {
        device ??= ComputeDevice.Cpu;
        string runDir = Path.Combine(Path.GetTempPath(), "stablelayers-grpo-bench-" + Guid.NewGuid().ToString("N"));
        var config = new GrpoConfig
        {
            Steps = steps,
            Threads = 2,
            Sampling = new GrpoConfig.SamplingSection { GroupSize = 8, ImagesPerStep = 1, MinLayers = 5, MaxLayers = 5 },
            Data = new GrpoConfig.DataSection { HeldoutCount = 0 },
            Grpo = new GrpoConfig.GrpoSection { Minibatches = 1 },
            Run = new GrpoConfig.RunSection { CheckpointEvery = 1000, EvalEvery = 0, GridEvery = 0 },
        };
        try
        {
            // Progress is reported right after each step's metrics are written, before any checkpoint or grid.
            var readsAtStep = new List<long> { HostReads.Count };
            var trainer = new GrpoTrainer(config, modelDir, runDir, new RubricJudge(), TextWriter.Null, device)
            {
                Progress = new Recorder(_ => readsAtStep.Add(HostReads.Count)),
            };
            await trainer.RunAsync(resume: false);
            var readsPerStep = readsAtStep.Zip(readsAtStep.Skip(1), (a, b) => b - a).ToList();
            var logs = File.ReadAllLines(Path.Combine(runDir, GrpoRunFolder.MetricsFile)).Select(l => JsonSerializer.Deserialize<StepLog>(l)!).ToList();
            var timed = logs.Skip(1).ToList(); // the first step pays for warm-up
            double matmul = DecomposeTiming.MatmulGflops(5, device);
            double sampling = timed.Average(s => s.SamplingSeconds), judging = timed.Average(s => s.JudgingSeconds), update = timed.Average(s => s.UpdateSeconds);
            double total = sampling + judging + update;
            double gflops = timed.Average(s => s.UpdateGflops);
            Console.WriteLine($"GRPO step, tiny preset ({modelDir}) on {device}, G = 8 candidates, N = 5 layers, {config.Sampling.Steps} sampling steps, SDE window {config.Sampling.SdeWindow}, 2 threads; mean of steps 2..{steps}");
            Console.WriteLine($"  sampling {sampling:F2} s ({sampling / total:P0})  judging {judging:F2} s ({judging / total:P0})  update {update:F2} s ({update / total:P0})  total {total:F2} s");
            Console.WriteLine($"  update: {gflops:F2} GFLOP/s (transformer forward+backward, analytic); float32 matmul same run {matmul:F2} GFLOP/s; ratio {gflops / matmul:F3}");
            Console.WriteLine($"  peak RSS {logs.Max(s => s.PeakRssMb):F0} MB");
            Console.WriteLine($"  host synchronisations per step: {string.Join(", ", readsPerStep)} ({config.Sampling.ImagesPerStep} image transfer per group + 1 divergence check + 1 per update mini-batch ({config.Grpo.Minibatches}))");
        }
        finally
        {
            if (Directory.Exists(runDir))
            {
                Directory.Delete(runDir, recursive: true);
            }
        }
    }

    private sealed class Recorder(Action<StepLog> report) : IProgress<StepLog>
    {
        public void Report(StepLog value) => report(value);
    }
}
