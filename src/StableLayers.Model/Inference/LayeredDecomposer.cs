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
        var condLatent = Model.Vae.Normalize(Model.Vae.EncodeMean(LayerTensors.FromImage(resized).unsqueeze(0)));
        int c = (int)condLatent.shape[1], h = (int)condLatent.shape[2], w = (int)condLatent.shape[3];
        var conditionTokens = LatentPacking.Pack(condLatent.unsqueeze(1));
        var frames = FrameShape.Layered(options.Layers, h / LatentPacking.PatchSize, w / LatentPacking.PatchSize);
        long outputTokens = (options.Layers + 1L) * LatentPacking.TokensPerFrame(h, w);

        bool useCfg = TrueCfg.IsActive(options.Cfg, !string.IsNullOrEmpty(options.NegativePrompt));
        var prompts = useCfg ? new[] { options.Prompt, options.NegativePrompt } : new[] { options.Prompt };
        var text = Model.Prompts.Encode(prompts);
        int batch = prompts.Length;
        var condBatch = conditionTokens.expand(batch, -1, -1);

        var generator = new Generator(seed: unchecked((ulong)options.Seed));
        var x = randn([1, options.Layers + 1, c, h, w], generator: generator);
        var schedule = FlowMatchScheduler.ForConditionTokens(LatentPacking.TokensPerFrame(h, w)).Schedule(options.Steps);
        IFlowSampler sampler = options.Sampler == SamplerKind.Heun ? HeunSampler.Instance : EulerSampler.Instance;

        Tensor Velocity(Tensor xt, float sigma)
        {
            using var step = NewDisposeScope();
            var tokens = LatentPacking.AppendCondition(LatentPacking.Pack(xt).expand(batch, -1, -1), condBatch);
            var t = full([batch], sigma, dtype: float32);
            var pred = Model.Transformer.forward(tokens, text.Embeddings, text.Mask, t, frames);
            var v = LatentPacking.OutputPart(pred, outputTokens).to(float32);
            if (useCfg)
            {
                v = TrueCfg.Combine(v.narrow(0, 0, 1), v.narrow(0, 1, 1), options.Cfg, options.CfgNormalize);
            }

            return LatentPacking.Unpack(v, options.Layers + 1, c, h, w).MoveToOuterDisposeScope();
        }

        var latents = sampler.Sample(x, schedule, Velocity);
        var layerLatents = Model.Vae.Denormalize(latents[0].narrow(0, 1, options.Layers));
        var decoded = Model.Vae.Decode(layerLatents).clamp(-1f, 1f);
        var stack = LayerTensors.ToStack(decoded);
        var layers = stack.Layers.Select((l, i) => new Layer(i == 0 ? "background" : $"layer {i}", ImageResize.Resize(l.Image, input.Width, input.Height))).ToList();
        return new LayerStack(layers);
    }
}
