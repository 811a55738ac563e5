using System.Globalization;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Data.Synthesis;
using StableLayers.Metrics;
using StableLayers.Model;
using StableLayers.Model.Inference;
using StableLayers.Model.Pipeline;
using static TorchSharp.torch;

namespace StableLayers.Benchmarks;

/// <summary>
/// Where a tiny base's error on held-out synthetic designs comes from, on the protocol of
/// bench/experiments/eval_tiny_base.sh (synth seed 1000, 64 px designs through the 32 px bucket, empty prompt,
/// seed k for design k). Each row decomposes the same designs a different way and scores it with the eval metrics:
/// <list type="bullet">
/// <item>resize floor: the ground-truth layers down to the bucket and back (what the bucket alone costs);</item>
/// <item>VAE floor: the same through the VAE's encode and decode (what the latent space costs);</item>
/// <item>one step at sigma s: the model's x0 estimate from the noised ground truth, x0 = x_s - s v (how well the
/// network denoises at each noise level; at s = 1 it sees noise only);</item>
/// <item>full sampling: `decompose` with 20 Euler steps (what the eval reports).</item>
/// </list>
/// STEPS = 0 leaves out the full-sampling row (bench/experiments/eval_tiny_base.sh measures it too).
/// A large gap between "one step at 0.5" and "sampling" means sampling from high noise is what fails.
/// </summary>
public static class TinyBaseDiagnosis
{
    public static void Run(string modelDir, int count, int steps)
    {
        set_num_threads(1);
        using var model = LayeredModel.Load(modelDir, ComputeDevice.Cpu);
        model.Transformer.eval();
        model.Vae.eval();
        var synth = new SynthOptions { Size = 64, MinLayers = 2, MaxLayers = 5, Seed = 1000 };
        var generator = new SynthGenerator(synth);
        var designs = Enumerable.Range(0, count).Select(i => generator.Generate(i)).ToList();
        int side = model.Config.Resolution;
        Console.WriteLine($"model {modelDir}: {count} held-out designs (synth seed 1000, 64 px -> {side} px bucket)");
        Console.WriteLine("| decomposition | recon L1 | best-match L1 | layer-0 SSIM | bad layers |");
        Console.WriteLine("|---|---|---|---|---|");

        Row("resize floor (gt -> bucket -> 64 px)", designs, d => Back(Shrink(d.Stack, side), d.Stack));
        Row("VAE floor (gt -> bucket -> VAE -> 64 px)", designs, d => Back(VaeRoundTrip(model, Shrink(d.Stack, side)), d.Stack));
        foreach (float sigma in new[] { 0.25f, 0.5f, 0.75f, 0.9f, 1.0f })
        {
            Row($"one step at sigma {sigma:F2}", designs.Select((d, k) => (d, k)).ToList(),
                x => Back(OneStep(model, Shrink(x.d.Stack, side), sigma, x.k), x.d.Stack));
        }

        if (steps < 1)
        {
            return;
        }

        var decomposer = new LayeredDecomposer(model);
        Row($"full sampling ({steps} Euler steps)", designs.Select((d, k) => (d, k)).ToList(),
            x => decomposer.Decompose(x.d.Stack.Composite(), new DecomposeOptions { Layers = x.d.Stack.Count, Steps = steps, Seed = x.k }));
    }

    private static void Row<T>(string name, IReadOnlyList<T> items, Func<T, LayerStack> decompose)
        where T : notnull
    {
        var metrics = items.Select((item, i) =>
        {
            var pred = decompose(item);
            var gt = item switch
            {
                SynthSample s => s.Stack,
                ValueTuple<SynthSample, int> p => p.Item1.Stack,
                _ => throw new InvalidOperationException(),
            };
            return DecompositionEvaluator.Evaluate($"d{i}", pred, gt, gt.Composite());
        }).ToList();
        double Mean(Func<SampleMetrics, double?> f) => metrics.Select(f).Where(v => v is not null).Select(v => v!.Value).DefaultIfEmpty(double.NaN).Average();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {name} | {Mean(m => m.ReconL1):F4} | {Mean(m => m.BestMatchL1):F4} | {Mean(m => m.Layer0Ssim):F3} | {Mean(m => m.BadLayers):F2} |"));
    }

    private static LayerStack Shrink(LayerStack stack, int side) =>
        new(stack.Layers.Select(l => new Layer(l.Name, ImageResize.Resize(l.Image, side, side))).ToList());

    private static LayerStack Back(LayerStack small, LayerStack like) =>
        new(small.Layers.Select(l => new Layer(l.Name, ImageResize.Resize(l.Image, like.Width, like.Height))).ToList());

    private static LayerStack VaeRoundTrip(LayeredModel model, LayerStack stack)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = LayerTensors.FromStack(stack);
        var y = model.Vae.Decode(model.Vae.EncodeMean(x)).clamp(-1f, 1f);
        return LayerTensors.ToStack(y, stack.Layers.Select(l => l.Name).ToList());
    }

    /// <summary>x0 estimate of the [composite, layers] latents after noising the ground truth to <paramref name="sigma"/>.</summary>
    private static LayerStack OneStep(LayeredModel model, LayerStack stack, float sigma, int seed)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var composite = stack.Composite();
        using var conditioning = LayeredConditioning.Create(model, composite, stack.Count, [string.Empty]);
        var frames = LayerTensors.FromStack(new LayerStack([new Layer("composite", composite), .. stack.Layers]));
        var z = model.Vae.Normalize(model.Vae.EncodeMean(frames));
        var x0 = z.unsqueeze(0);
        var noise = conditioning.InitialNoise(ComputeDevice.Cpu.Generator((ulong)seed), rows: 1);
        var xt = ((1 - sigma) * x0) + (sigma * noise);
        var v = conditioning.Velocity(xt, sigma);
        return conditioning.Decode(xt - (sigma * v))[0];
    }
}
