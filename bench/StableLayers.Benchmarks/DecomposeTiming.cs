using System.Diagnostics;
using StableLayers.Core.Imaging;
using StableLayers.Data.Synthesis;
using StableLayers.Model;
using StableLayers.Model.Inference;
using StableLayers.Model.Pipeline;
using StableLayers.Model.Transformer;
using static TorchSharp.torch;

namespace StableLayers.Benchmarks;

/// <summary>
/// `decompose` mode: wall time of one decomposition per image, and the transformer's achieved FLOP/s
/// (analytic count / time of the same forward passes) against a float32 matmul timed in the same run,
/// so the ratio is comparable across machines and loads. With a batch size above 1 it also times that many
/// different images decomposed in one batch, per image, against one at a time in the same run.
/// </summary>
public static class DecomposeTiming
{
    public static void Run(string modelDir, int imageSize, int layers, int steps, int repeats, int batchSize = 1, ComputeDevice? device = null)
    {
        device ??= ComputeDevice.Cpu;
        using var model = LayeredModel.Load(modelDir, device);
        var decomposer = new LayeredDecomposer(model);
        var sample = new SynthGenerator(new SynthOptions { Size = imageSize, MinLayers = layers, MaxLayers = layers, Seed = 7 }).Generate(0);
        RgbaImage input = sample.Stack.FlattenOnWhite();
        var options = new DecomposeOptions { Layers = layers, Steps = steps, Seed = 1 };

        decomposer.Decompose(input, options);
        double decomposeMs = MedianMs(repeats, () => decomposer.Decompose(input, options));

        var cfg = model.Config;
        var bucket = ResolutionBucket.For(input.Width, input.Height, cfg.Resolution, cfg.PixelsPerToken, cfg.PixelsPerToken);
        int latentH = bucket.Height / cfg.Vae.SpatialCompression, latentW = bucket.Width / cfg.Vae.SpatialCompression;
        int perFrame = LatentPacking.TokensPerFrame(latentH, latentW);
        long imageTokens = ((layers + 1L) * perFrame) + perFrame;
        var text = model.Prompts.Encode([string.Empty]);
        long textTokens = text.Embeddings.shape[1];
        double flops = TransformerFlops.Forward(cfg.Transformer, 1, imageTokens, textTokens);

        double forwardMs;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var tokens = randn([1, imageTokens, cfg.Transformer.InChannels], device: device.Torch, generator: device.Generator(3));
            var frames = FrameShape.Layered(layers, latentH / LatentPacking.PatchSize, latentW / LatentPacking.PatchSize);
            var t = full([1], 0.5f, dtype: float32, device: device.Torch);
            void Forward()
            {
                using var step = NewDisposeScope();
                model.Transformer.forward(tokens, text.Embeddings, text.Mask, t, frames);
                Synchronize(device);
            }

            Forward();
            forwardMs = MedianMs(Math.Max(repeats, 5) * 4, Forward);
        }

        double matmulFlops = MatmulGflops(repeats, device) * 1e9;
        double modelFlops = flops / (forwardMs / 1e3);
        Console.WriteLine($"model {modelDir} on {device}: {input.Width}x{input.Height} input -> {bucket.Width}x{bucket.Height} bucket, {layers} layers, {steps} Euler steps, {get_num_threads()} threads");
        Console.WriteLine($"  decompose (VAE encode + {steps} transformer passes + decode): {decomposeMs,9:F1} ms per image (median of {repeats})");
        Console.WriteLine($"  transformer forward: {imageTokens} image + {textTokens} text tokens, {flops / 1e6:F1} MFLOP, {forwardMs:F2} ms -> {modelFlops / 1e9:F2} GFLOP/s");
        Console.WriteLine($"  float32 matmul 1024^3 same run: {matmulFlops / 1e9:F2} GFLOP/s; model/matmul ratio {modelFlops / matmulFlops:F3}");
        Console.WriteLine($"  transformer share of decompose time: {steps * forwardMs / decomposeMs:P0}");
        if (batchSize > 1)
        {
            var generator = new SynthGenerator(new SynthOptions { Size = imageSize, MinLayers = layers, MaxLayers = layers, Seed = 7 });
            var images = Enumerable.Range(0, batchSize).Select(i => generator.Generate(i).Stack.FlattenOnWhite()).ToList();
            var perImage = Enumerable.Range(0, batchSize).Select(i => options with { Seed = i }).ToList();
            decomposer.Decompose(images, perImage);
            double batchedMs = MedianMs(repeats, () => decomposer.Decompose(images, perImage)) / batchSize;
            double aloneMs = MedianMs(repeats, () =>
            {
                for (int i = 0; i < batchSize; i++)
                {
                    decomposer.Decompose(images[i], perImage[i]);
                }
            }) / batchSize;
            Console.WriteLine($"  {batchSize} images: {batchedMs,9:F1} ms per image in one batch vs {aloneMs:F1} ms one at a time (ratio {batchedMs / aloneMs:F2})");
        }
    }

    /// <summary>float32 1024^3 matmul throughput on <paramref name="device"/> (default: this process's CPU threads), GFLOP/s.</summary>
    public static double MatmulGflops(int repeats, ComputeDevice? device = null)
    {
        device ??= ComputeDevice.Cpu;
        using var scope = NewDisposeScope();
        var g = device.Generator(5);
        var a = randn([1024, 1024], device: device.Torch, generator: g);
        var b = randn([1024, 1024], device: device.Torch, generator: g);
        void Mm()
        {
            using var s = NewDisposeScope();
            matmul(a, b);
            Synchronize(device);
        }

        Mm();
        double ms = MedianMs(Math.Max(repeats, 5), Mm);
        return 2.0 * 1024 * 1024 * 1024 / (ms / 1e3) / 1e9;
    }

    /// <summary>Waits for queued CUDA kernels so wall times measure the work, not its launch.</summary>
    public static void Synchronize(ComputeDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.IsCuda)
        {
            TorchSharp.torch.cuda.synchronize(device.Torch);
        }
    }

    /// <summary>Median wall time of <paramref name="repeats"/> runs, in milliseconds.</summary>
    public static double MedianMs(int repeats, Action run)
    {
        var times = new List<double>();
        for (int i = 0; i < repeats; i++)
        {
            var sw = Stopwatch.StartNew();
            run();
            times.Add(sw.Elapsed.TotalMilliseconds);
        }

        times.Sort();
        return times[times.Count / 2];
    }
}
