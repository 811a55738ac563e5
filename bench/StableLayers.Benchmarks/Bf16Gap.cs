using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Data.Synthesis;
using StableLayers.Model;
using StableLayers.Model.Pipeline;
using StableLayers.Model.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Benchmarks;

/// <summary>
/// `bf16-gap` mode: the model with its transformer cast to bf16 (VAE and text encoder float32, as our pipeline runs
/// them) against the same model in float32, on the same input, noise and schedule, in one run:
/// the transformer's output along the float32 sampling trajectory (both at the same x and sigma; the bf16 model gets
/// the pipeline's bf16 timestep), the final latents after Euler sampling, and the decoded RGBA layers.
/// </summary>
public static class Bf16Gap
{
    public static void Run(string modelDir, int imageSize, int layers, int steps)
    {
        using var m32 = LayeredModel.Load(modelDir);
        using var m16 = LayeredModel.Load(modelDir);
        m16.Transformer.to(ScalarType.BFloat16);
        var sample = new SynthGenerator(new SynthOptions { Size = imageSize, MinLayers = layers, MaxLayers = layers, Seed = 7 }).Generate(0);
        var input = sample.Stack.FlattenOnWhite();
        var cfg = m32.Config;
        var bucket = ResolutionBucket.For(input.Width, input.Height, cfg.Resolution, cfg.PixelsPerToken, cfg.PixelsPerToken);
        var resized = Core.Imaging.ImageResize.Resize(input, bucket.Width, bucket.Height);

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var c32 = LayeredConditioning.Create(m32, resized, layers, [string.Empty]);
        using var c16 = LayeredConditioning.Create(m16, resized, layers, [string.Empty]);
        var schedule = c32.Schedule(steps);
        var x0 = c32.InitialNoise(new Generator(seed: 0), rows: 1);

        double velocityGap = 0, velocityGapSum = 0;
        var final32 = EulerSampler.Instance.Sample(x0, schedule, c32.Velocity);
        var final16 = EulerSampler.Instance.Sample(x0, schedule, c16.Velocity);

        // Same (x, sigma) for both: the float32 trajectory's states.
        EulerSampler.Instance.Sample(x0, schedule, c32.Velocity, (i, x) =>
        {
            if (i + 1 < schedule.Steps)
            {
                using var step = NewDisposeScope();
                float s = (float)schedule.Sigma(i + 1);
                double gap = RelativeGap(c32.Velocity(x, s), c16.Velocity(x, s));
                velocityGap = Math.Max(velocityGap, gap);
                velocityGapSum += gap;
            }
        });

        double latentGap = RelativeGap(final32, final16);
        var (maxByte, meanByte) = ImageDiff.LayerBytes(c32.Decode(final32)[0], c32.Decode(final16)[0]);

        Console.WriteLine($"model {modelDir}: {input.Width}x{input.Height} synthetic input -> {bucket.Width}x{bucket.Height} bucket, {layers} layers, {steps} Euler steps, seed 0, {get_num_threads()} threads");
        Console.WriteLine("bf16 transformer (pipeline bf16 timestep) vs float32, relative gap max|a - b| / max|a|:");
        Console.WriteLine($"  transformer output at the same (x, sigma): max over {steps - 1} steps {velocityGap:G3}, mean {velocityGapSum / (steps - 1):G3}");
        Console.WriteLine($"  final latents after {steps} steps: {latentGap:G3}");
        Console.WriteLine($"  decoded RGBA layers (bytes): max |diff| {maxByte}/255 = {maxByte / 255.0:G3}, mean |diff| {meanByte:G3}/255");
    }

    private static double RelativeGap(Tensor reference, Tensor other)
    {
        using var scope = NewDisposeScope();
        var r = reference.to(ScalarType.Float64);
        return (r - other.to(ScalarType.Float64)).abs().max().item<double>() / r.abs().max().item<double>();
    }

}
