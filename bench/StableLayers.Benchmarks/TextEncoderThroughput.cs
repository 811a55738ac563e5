using System.Globalization;
using StableLayers.Model.Planning;
using StableLayers.Model.Tests;
using StableLayers.Model.Text;
using static TorchSharp.torch;

namespace StableLayers.Benchmarks;

/// <summary>
/// The Qwen2.5-VL text encoder's prompt throughput on the CPU: the released width (hidden 3584, 28 query / 4 KV
/// heads, intermediate 18944) with only a few decoder layers (the full 28 do not fit beside other work on small
/// machines; time is linear in the layer count) and random float32 weights, one prompt of TOKENS tokens per forward.
/// Reported as tokens/s and as analytic GFLOP/s against a float32 1024^3 matmul timed in the same run, so the ratio is
/// comparable across machines and loads; the full-depth time per prompt is extrapolated from the per-layer time.
/// The vocabulary is cut to 4096 rows (an embedding lookup costs nothing; the full table is 2.2 GB in float32).
/// </summary>
public static class TextEncoderThroughput
{
    public static void Run(int layers, int tokens, int repeats)
    {
        if (layers < 1 || tokens < 1 || repeats < 1)
        {
            throw new ArgumentException("LAYERS, TOKENS and REPEATS must be positive");
        }

        var full = Qwen25VlTextConfig.Qwen25Vl7B;
        var config = full with { NumHiddenLayers = layers, VocabSize = 4096 };
        manual_seed(0);
        using var encoder = new Qwen25VlTextEncoder(config, CPU);
        encoder.eval();
        using var ids = randint(0, config.VocabSize, [1, tokens], dtype: ScalarType.Int64);
        using var mask = ones([1, tokens], dtype: ScalarType.Int64);

        void Forward()
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            encoder.call(ids, mask);
        }

        Forward();
        double forwardMs = DecomposeTiming.MedianMs(repeats, Forward);
        double matmulFlops = DecomposeTiming.MatmulGflops(repeats) * 1e9;

        // The planner's activation estimate against one forward's measured peak (host RSS over the weights).
        HostMemory.MallocTrim(0);
        var (_, measuredPeak, method) = HostMemory.MeasurePeakIncrease(() =>
        {
            Forward();
            return 0;
        });
        double? planned = tokens > QwenPromptEncoder.DropTokens
            ? MemoryPlan.Compute(new MemoryPlanRequest
            {
                QwenTextEncoder = config,
                TextEncoderPlacement = TextEncoderPlacement.Offloaded,
                DType = PlanDType.FP32,
                TextTokens = tokens - QwenPromptEncoder.DropTokens,
            }).EncodingActivations
            : null;

        double flops = Flops(config, tokens);
        double modelFlops = flops / (forwardMs / 1e3);
        double tokensPerSecond = tokens / (forwardMs / 1e3);
        double perLayerMs = forwardMs / layers;
        var c = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(c, $"Qwen2.5-VL text encoder, CPU float32, {get_num_threads()} threads: width {config.HiddenSize}, {config.NumAttentionHeads}/{config.NumKeyValueHeads} heads, intermediate {config.IntermediateSize}, {layers} of {full.NumHiddenLayers} layers, one prompt of {tokens} tokens"));
        Console.WriteLine(string.Create(c, $"  forward: {forwardMs:F1} ms (median of {repeats}) -> {tokensPerSecond:F0} tokens/s at {layers} layers, {flops / 1e9:F1} GFLOP -> {modelFlops / 1e9:F2} GFLOP/s"));
        Console.WriteLine(string.Create(c, $"  float32 matmul 1024^3 same run: {matmulFlops / 1e9:F2} GFLOP/s; encoder/matmul ratio {modelFlops / matmulFlops:F3}"));
        // glibc keeps freed blocks in its heap once its mmap threshold has grown, inflating the peak; the memory
        // benchmarks run with MALLOC_MMAP_THRESHOLD_=65536 so freed tensors leave the resident set at once.
        string threshold = Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is { } t ? $"MALLOC_MMAP_THRESHOLD_={t}" : "MALLOC_MMAP_THRESHOLD_ unset: set it to 65536 for a fair peak";
        Console.WriteLine(string.Create(c, $"  activation peak of one forward ({threshold}): measured {measuredPeak / 1048576.0:F1} MiB ({method}), planner {(planned is { } p ? $"{p / 1048576.0:F1} MiB, planner/measured {p / measuredPeak:F2}" : "n/a (TOKENS must exceed the 34 template tokens)")}"));
        Console.WriteLine(string.Create(c, $"  full depth ({full.NumHiddenLayers} layers, linear in layers): ~{perLayerMs * full.NumHiddenLayers / 1e3:F1} s per {tokens}-token prompt, {tokensPerSecond * layers / full.NumHiddenLayers:F0} tokens/s"));
    }

    /// <summary>
    /// Multiply-adds x 2 of one forward over <paramref name="tokens"/> tokens: q/k/v/o projections, the SwiGLU MLP,
    /// and attention (QK^T and AV over every query-key pair: the causal mask is applied to full scores).
    /// </summary>
    public static double Flops(Qwen25VlTextConfig c, int tokens)
    {
        double h = c.HiddenSize, kv = (double)c.NumKeyValueHeads * c.HeadDim, i = c.IntermediateSize, l = tokens;
        double projections = 2 * l * ((2 * h * h) + (2 * h * kv));
        double mlp = 2 * l * 3 * h * i;
        double attention = 2 * 2 * l * l * h;
        return c.NumHiddenLayers * (projections + mlp + attention);
    }
}
