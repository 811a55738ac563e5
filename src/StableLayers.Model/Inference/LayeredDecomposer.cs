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

    public LayerStack Decompose(RgbaImage input, DecomposeOptions options)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Layers < 1 || options.Steps < 1)
        {
            throw new ArgumentException("layers and steps must be at least 1");
        }

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var cfg = Model.Config;
        var bucket = ResolutionBucket.For(input.Width, input.Height, cfg.Resolution, cfg.PixelsPerToken, cfg.PixelsPerToken);
        var resized = ImageResize.Resize(input, bucket.Width, bucket.Height);
        bool useCfg = TrueCfg.IsActive(options.Cfg, !string.IsNullOrEmpty(options.NegativePrompt));
        using var conditioning = LayeredConditioning.Create(Model, resized, options.Layers,
            useCfg ? [options.Prompt, options.NegativePrompt] : [options.Prompt]);
        var x = conditioning.InitialNoise(new Generator(seed: unchecked((ulong)options.Seed)), rows: 1);
        IFlowSampler sampler = options.Sampler == SamplerKind.Heun ? HeunSampler.Instance : EulerSampler.Instance;

        Tensor Velocity(Tensor xt, float sigma)
        {
            using var step = NewDisposeScope();
            var v = conditioning.PackedVelocity(xt, sigma);
            if (useCfg)
            {
                v = TrueCfg.Combine(v.narrow(0, 0, 1), v.narrow(0, 1, 1), options.Cfg, options.CfgNormalize);
            }

            return conditioning.Unpack(v).MoveToOuterDisposeScope();
        }

        var latents = sampler.Sample(x, conditioning.Schedule(options.Steps), Velocity);
        var stack = conditioning.Decode(latents)[0];
        var layers = stack.Layers.Select(l => new Layer(l.Name, ImageResize.Resize(l.Image, input.Width, input.Height))).ToList();
        return new LayerStack(layers);
    }
}
