using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Model.Pipeline;
using StableLayers.Model.Schedulers;
using StableLayers.Model.Transformer;
using static TorchSharp.torch;

namespace StableLayers.Model.Inference;

/// <summary>
/// Image -> N RGBA layers with a <see cref="LayeredModel"/>: resize to the resolution bucket, encode the
/// condition with the VAE, sample N+1 latent frames (frame 0 regenerates the composite) from seeded noise
/// with the flow-matching schedule, drop frame 0, decode each layer, resize back to the input size.
/// </summary>
public sealed class LayeredDecomposer(LayeredModel model)
{
    public LayeredModel Model { get; } = model;

    public LayerStack Decompose(RgbaImage input, DecomposeOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(options);
        return Decompose([input], [options], cancellationToken)[0];
    }

    /// <summary>
    /// Several images at once, each with its own options; results in input order. Images that share a resolution
    /// bucket and a layer count run as one batch of model calls. Each image's noise comes from its own seed, so an
    /// image decomposes the same alone or in a batch (up to floating-point summation order). Everything but
    /// <see cref="DecomposeOptions.Layers"/> and <see cref="DecomposeOptions.Seed"/> must be the same for all.
    /// <paramref name="cancellationToken"/> is checked before every model call (a request whose client left stops
    /// within one sampling step).
    /// </summary>
    public IReadOnlyList<LayerStack> Decompose(IReadOnlyList<RgbaImage> inputs, IReadOnlyList<DecomposeOptions> options, CancellationToken cancellationToken = default) =>
        Decompose(inputs, options, onStep: null, cancellationToken);

    /// <summary>
    /// As <see cref="Decompose(IReadOnlyList{RgbaImage}, IReadOnlyList{DecomposeOptions}, CancellationToken)"/>, reporting
    /// each finished sampling step to <paramref name="onStep"/> (steps done, steps in all, over every batch), so a
    /// served job can show its progress.
    /// </summary>
    public IReadOnlyList<LayerStack> Decompose(
        IReadOnlyList<RgbaImage> inputs,
        IReadOnlyList<DecomposeOptions> options,
        Action<int, int>? onStep,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(options);
        if (inputs.Count != options.Count || inputs.Count == 0)
        {
            throw new ArgumentException($"{inputs.Count} images but {options.Count} options; give one per image, at least one");
        }

        var shared = options[0];
        foreach (var o in options)
        {
            if (o.Layers < 1 || o.Steps < 1)
            {
                throw new ArgumentException("layers and steps must be at least 1");
            }

            if (o with { Layers = shared.Layers, Seed = shared.Seed } != shared)
            {
                throw new ArgumentException("images of one batch may differ only in layers and seed");
            }
        }

        var cfg = Model.Config;
        var buckets = inputs.Select(i => ResolutionBucket.For(i.Width, i.Height, cfg.Resolution, cfg.PixelsPerToken, cfg.PixelsPerToken)).ToArray();
        var results = new LayerStack[inputs.Count];
        var groups = Enumerable.Range(0, inputs.Count).GroupBy(i => (buckets[i], options[i].Layers)).ToList();
        int totalSteps = groups.Count * shared.Steps;
        int done = 0;
        void StepDone()
        {
            done++;
            onStep?.Invoke(done, totalSteps);
        }

        foreach (var group in groups)
        {
            var members = group.ToArray();
            var (bucket, layers) = group.Key;
            var resized = members.Select(i => ImageResize.Resize(inputs[i], bucket.Width, bucket.Height)).ToList();
            var stacks = Sample(resized, layers, members.Select(i => options[i].Seed).ToList(), shared, StepDone, cancellationToken);
            for (int k = 0; k < members.Length; k++)
            {
                var input = inputs[members[k]];
                results[members[k]] = new LayerStack(stacks[k].Layers.Select(l => new Layer(l.Name, ImageResize.Resize(l.Image, input.Width, input.Height))).ToList());
            }
        }

        return results;
    }

    /// <summary>One batch: images already at one bucket size, one layer count, a seed per image.</summary>
    private IReadOnlyList<LayerStack> Sample(IReadOnlyList<RgbaImage> images, int layers, IReadOnlyList<long> seeds, DecomposeOptions options, Action stepDone, CancellationToken cancellationToken)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        bool useCfg = TrueCfg.IsActive(options.Cfg, !string.IsNullOrEmpty(options.NegativePrompt));
        int rowsPerImage = useCfg ? 2 : 1;
        using var conditioning = LayeredConditioning.Create(Model, images, layers,
            useCfg ? [options.Prompt, options.NegativePrompt] : [options.Prompt]);
        var device = ComputeDevice.Of(Model.Device);
        var x = cat(seeds.Select(s => conditioning.InitialNoise(device.Generator(unchecked((ulong)s)), rows: 1)).ToArray(), 0);
        IFlowSampler sampler = options.Sampler == SamplerKind.Heun ? HeunSampler.Instance : EulerSampler.Instance;

        Tensor Velocity(Tensor xt, float sigma)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var step = NewDisposeScope();
            var rows = rowsPerImage == 1 || images.Count == 1 ? xt : xt.repeat_interleave(rowsPerImage, 0);
            var v = conditioning.PackedVelocity(rows, sigma);
            if (useCfg)
            {
                // Rows are image-major: (image, prompt) then (image, negative prompt).
                var pairs = v.view(images.Count, rowsPerImage, v.shape[1], v.shape[2]);
                v = TrueCfg.Combine(pairs.select(1, 0), pairs.select(1, 1), options.Cfg, options.CfgNormalize);
            }

            return conditioning.Unpack(v).MoveToOuterDisposeScope();
        }

        var latents = sampler.Sample(x, conditioning.Schedule(options.Steps), Velocity, (_, _) => stepDone());
        return conditioning.Decode(latents);
    }
}
