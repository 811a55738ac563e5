using System.Diagnostics;
using BenchmarkDotNet.Running;
using StableLayers.Benchmarks;

// dotnet run -c Release --project bench/StableLayers.Benchmarks -- [BenchmarkDotNet args]   full BenchmarkDotNet run
// ... -- quick                 a fast Stopwatch timing of every protocol (median of repeats), for CI-sized checks
// ... -- rubric [REPEATS]      the rubric judge on one group of 8 candidates x 5 layers at 640x640, one thread (median)
// ... -- write-sample DIR      writes DIR/pred/sample and DIR/gt/sample for bench/layerd_python_timing.py
// ... -- grpo-step [MODEL] [STEPS] [DEVICE]   GRPO step time split, update FLOP/s vs a float32 matmul, peak RSS, host synchronisations per step (G = 8, N = 5)
// ... -- decompose [MODEL] [SIZE] [LAYERS] [STEPS] [BATCH] [DEVICE]   decompose time per image and transformer FLOP/s vs a float32 matmul; BATCH > 1 also times batched decomposition
//     DEVICE: cpu, cuda or cuda:N (default: cuda when present, else cpu)
// ... -- bf16-gap [MODEL] [SIZE] [LAYERS] [STEPS]   transformer cast to bf16 vs float32: output, final latents and decoded layers, relative gaps
// ... -- load [LAYERS] [SHARD_MB] [compare]   full-width transformer checkpoint (LAYERS blocks, default 2) in bf16 shards of SHARD_MB (default 512): peak host memory and time of loading it in bf16 vs the largest shard; "compare" adds the float32-first path
// ... -- vlm-throughput [MS]   VlmJudge requests/s against a fake VLM answering after MS ms (default 200), concurrency 1, 8, 32
// ... -- ckpt-memory [WIDTH HEADS BLOCKS LAYERS SIDE TEXT BATCH lora|full]   peak memory of one update with and without activation checkpointing (defaults 256 4 6 4 20 64 1 lora)
// ... -- tiny-diagnosis [MODEL] [COUNT] [STEPS]   where a tiny base's held-out synth error comes from: resize floor, VAE floor, one-step x0 at each noise level, full sampling (STEPS 0: without it)
// ... -- text-encoder [LAYERS] [TOKENS] [REPEATS]   Qwen2.5-VL text encoder at full width with LAYERS layers (default 2) on the CPU: tokens/s and GFLOP/s vs a float32 matmul (one prompt of TOKENS, default 256)
// ... -- auto-layers [MODEL] [COUNT] [STEPS] [MAXN] [OUT.jsonl] [THREADS]   --layers auto on held-out synth designs with 2..MAXN layers (bench/experiments/auto_layers.sh)
// mpirun -np N ... StableLayers.Benchmarks.dll allreduce [TINY_CALLS] [FULL_CALLS]   gradient all-reduce time per step for the tiny and the full-size LoRA r16 (AllReduceTiming.cs: the exact command)
// ... -- plan-validate [small] [full[:PIXELS][:ckpt]] [ckpt]   memory planner's prediction vs measured peak memory (child process per case)
if (args.Length >= 1 && args[0] == "allreduce")
{
    // Under mpirun: the exact command is in AllReduceTiming's header.
    int Arg(int i, int fallback) => args.Length > i ? int.Parse(args[i], System.Globalization.CultureInfo.InvariantCulture) : fallback;
    return AllReduceTiming.Run(Arg(1, 50), Arg(2, 7));
}

if (args.Length >= 1 && args[0] == "tiny-diagnosis")
{
    int Arg(int i, int fallback) => args.Length > i ? int.Parse(args[i], System.Globalization.CultureInfo.InvariantCulture) : fallback;
    TinyBaseDiagnosis.Run(args.Length >= 2 ? args[1] : "models/tiny-base", Arg(2, 48), Arg(3, 20));
    return 0;
}

if (args.Length >= 1 && args[0] == "text-encoder")
{
    int Arg(int i, int fallback) => args.Length > i ? int.Parse(args[i], System.Globalization.CultureInfo.InvariantCulture) : fallback;
    TextEncoderThroughput.Run(Arg(1, 2), Arg(2, 256), Arg(3, 5));
    return 0;
}

if (args.Length >= 1 && args[0] == "auto-layers")
{
    string At(int i, string fallback) => args.Length > i ? args[i] : fallback;
    int Int(int i, int fallback) => int.Parse(At(i, fallback.ToString(System.Globalization.CultureInfo.InvariantCulture)), System.Globalization.CultureInfo.InvariantCulture);
    await AutoLayers.RunAsync(At(1, "models/tiny-base"), Int(2, 27), Int(3, 8), Int(4, 10), At(5, "out/auto-layers/designs.jsonl"), Int(6, 1));
    return 0;
}

if (args.Length >= 1 && args[0] == "ckpt-memory")
{
    CheckpointMemory.Run(CheckpointMemory.Shape.Parse(args, 1));
    return 0;
}

if (args.Length >= 2 && args[0] == "ckpt-memory-child")
{
    CheckpointMemory.Child(args[1] == "on", CheckpointMemory.Shape.Parse(args, 2));
    return 0;
}

if (args.Length >= 1 && args[0] == "plan-validate")
{
    return StableLayers.Benchmarks.PlanValidation.Run(args.Skip(1).ToList());
}

if (args.Length >= 12 && args[0] == "plan-measure")
{
    StableLayers.Benchmarks.PlanMeasurement.RunChild(StableLayers.Benchmarks.PlanCase.Parse(args.Skip(1).ToList()));
    return 0;
}

if (args.Length >= 1 && args[0] == "vlm-throughput")
{
    int ms = args.Length >= 2 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 200;
    await VlmThroughput.RunAsync(TimeSpan.FromMilliseconds(ms), [1, 8, 32]);
    return 0;
}

if (args.Length >= 1 && args[0] == "load")
{
    int layers = args.Length >= 2 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 2;
    long shardMb = args.Length >= 3 ? long.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 512;
    LoadMemory.Run("configs/qwen-image-layered.json", layers, shardMb * 1_000_000, compareFloat32First: args.Length >= 4 && args[3] == "compare");
    return 0;
}

if (args.Length >= 2 && args[0] == "write-sample")
{
    BenchmarkSample.Write(args[1]);
    Console.WriteLine($"wrote {Path.Combine(args[1], "pred", "sample")} and {Path.Combine(args[1], "gt", "sample")}");
    return 0;
}

if (args.Length >= 1 && args[0] == "decompose")
{
    string At(int i, string fallback) => args.Length > i ? args[i] : fallback;
    int Int(int i, int fallback) => int.Parse(At(i, fallback.ToString(System.Globalization.CultureInfo.InvariantCulture)), System.Globalization.CultureInfo.InvariantCulture);
    DecomposeTiming.Run(At(1, "models/tiny-base"), Int(2, 128), Int(3, 4), Int(4, 20), repeats: 5, batchSize: Int(5, 1),
        device: StableLayers.Model.ComputeDevice.Parse(args.Length > 6 ? args[6] : null, "DEVICE"));
    return 0;
}

if (args.Length >= 1 && args[0] == "bf16-gap")
{
    int Arg(int i, int fallback) => args.Length > i ? int.Parse(args[i], System.Globalization.CultureInfo.InvariantCulture) : fallback;
    Bf16Gap.Run(args.Length >= 2 ? args[1] : "models/tiny-base", Arg(2, 128), Arg(3, 4), Arg(4, 20));
    return 0;
}

if (args.Length >= 1 && args[0] == "grpo-step")
{
    await GrpoStepTiming.RunAsync(args.Length >= 2 ? args[1] : "models/tiny-base", args.Length >= 3 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 4,
        StableLayers.Model.ComputeDevice.Parse(args.Length >= 4 ? args[3] : null, "DEVICE"));
    return 0;
}

if (args.Length >= 1 && args[0] == "rubric")
{
    int rubricRepeats = args.Length >= 2 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 5;
    PrintRubricTiming(rubricRepeats);
    return 0;
}

if (args.Length >= 1 && args[0] == "quick")
{
    var b = new MetricBenchmarks();
    b.Setup();
    var cases = new (string Name, Func<object?> Run)[]
    {
        ("planes (10 layers)", () => b.Planes()),
        ("best-match L1", () => b.BestMatch()),
        ("LayerD protocol", () => b.LayerD()),
        ("bad layers", () => b.BadLayers()),
        ("evenness", () => b.Evenness()),
        ("SSIM (one, 3 channels)", () => b.SsimOnce()),
        ("connected components", () => b.Components()),
        ("layer-0 SSIM + inpaint", () => b.Layer0()),
        ("reconstruction L1", () => b.Reconstruction()),
        ("full metric set", () => b.Full()),
    };
    int repeats = args.Length >= 2 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 7;
    Console.WriteLine($"640x640, 5 predicted vs 5 ground-truth layers; median of {repeats} runs after a warm-up");
    foreach (var (name, run) in cases)
    {
        run();
        Console.WriteLine($"  {name,-26} {DecomposeTiming.MedianMs(repeats, () => run()),9:F1} ms");
    }

    PrintRubricTiming(Math.Max(3, repeats / 2));
    return 0;
}

BenchmarkSwitcher.FromAssembly(typeof(MetricBenchmarks).Assembly).Run(args);
return 0;

static void PrintRubricTiming(int repeats)
{
    double ms = RubricJudgeTiming.MedianMs(repeats);
    Console.WriteLine($"  {"rubric judge, 8 cand. x 5 layers, 1 thread",-26} {ms,9:F1} ms  ({ms / RubricJudgeTiming.Candidates:F1} ms per candidate; median of {repeats})");
}
