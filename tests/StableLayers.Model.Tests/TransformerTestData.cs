using StableLayers.Model.Transformer;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

/// <summary>Random inputs for a tiny transformer: 2 output layers + composite + condition, 4x4 tokens each, 6 text tokens.</summary>
internal sealed record TransformerTestData(Tensor Latents, Tensor Text, Tensor Mask, Tensor Timestep, IReadOnlyList<FrameShape> Frames)
{
    public static TransformerConfig Config { get; } = TransformerConfig.Tiny(layers: 2, heads: 2, headDim: 16, textDim: 32);

    public static TransformerTestData Create(long batch = 2, int layers = 2, int side = 4, int textLength = 6, int realText = 4)
    {
        var frames = FrameShape.Layered(layers, side, side);
        long tokens = frames.Sum(f => (long)f.TokenCount);
        var mask = arange(textLength).lt(realText).unsqueeze(0).expand(batch, textLength).contiguous();
        return new TransformerTestData(
            randn(batch, tokens, Config.InChannels),
            randn(batch, textLength, Config.JointAttentionDim),
            mask,
            rand(batch),
            frames);
    }

    public Tensor Run(QwenImageTransformer2DModel model) => model.forward(Latents, Text, Mask, Timestep, Frames);
}
