using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Model;
using StableLayers.Model.Pipeline;
using StableLayers.Model.Transformer;
using static TorchSharp.torch;

namespace StableLayers.Training.Grpo;

/// <summary>
/// What the G candidates of one image share: the condition image's latent tokens, the prompt embedding and
/// the frame layout for N layers. <see cref="Velocity"/> is the one code path both sampling (no_grad) and
/// the GRPO update (with gradients) evaluate, so that the first update's ratio is exactly 1.
/// </summary>
public sealed class GroupConditioning : IDisposable
{
    private readonly LayeredModel model;
    private readonly Tensor conditionTokens;
    private readonly Tensor textEmbeddings;
    private readonly Tensor textMask;
    private readonly IReadOnlyList<FrameShape> frames;
    private readonly long outputTokens;

    private GroupConditioning(LayeredModel model, int groupSize, int layers, int channels, int latentHeight, int latentWidth,
        Tensor conditionTokens, Tensor textEmbeddings, Tensor textMask)
    {
        this.model = model;
        GroupSize = groupSize;
        Layers = layers;
        Channels = channels;
        LatentHeight = latentHeight;
        LatentWidth = latentWidth;
        this.conditionTokens = conditionTokens;
        this.textEmbeddings = textEmbeddings;
        this.textMask = textMask;
        frames = FrameShape.Layered(layers, latentHeight / LatentPacking.PatchSize, latentWidth / LatentPacking.PatchSize);
        outputTokens = (layers + 1L) * LatentPacking.TokensPerFrame(latentHeight, latentWidth);
    }

    public int GroupSize { get; }

    public int Layers { get; }

    public int Channels { get; }

    public int LatentHeight { get; }

    public int LatentWidth { get; }

    /// <summary>Image tokens per candidate (output frames + condition), for FLOP counts.</summary>
    public long ImageTokens => outputTokens + conditionTokens.shape[1];

    public long TextTokens => textEmbeddings.shape[1];

    /// <summary>Encodes <paramref name="image"/> (already at a size the model accepts) once for a group of <paramref name="groupSize"/>.</summary>
    public static GroupConditioning Create(LayeredModel model, RgbaImage image, int layers, int groupSize, string prompt)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(image);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var latent = model.Vae.Normalize(model.Vae.EncodeMean(LayerTensors.FromImage(image).unsqueeze(0)));
        int c = (int)latent.shape[1], h = (int)latent.shape[2], w = (int)latent.shape[3];
        var cond = LatentPacking.Pack(latent.unsqueeze(1)).expand(groupSize, -1, -1).contiguous();
        var text = model.Prompts.Encode([prompt]);
        var emb = text.Embeddings.expand(groupSize, -1, -1).contiguous();
        var mask = text.Mask.expand(groupSize, -1).contiguous();
        return new GroupConditioning(model, groupSize, layers, c, h, w,
            cond.MoveToOuterDisposeScope(), emb.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope());
    }

    /// <summary>Seeded starting noise for the group, [G, N+1, C, h, w] float32.</summary>
    public Tensor InitialNoise(Generator generator) =>
        randn([GroupSize, Layers + 1, Channels, LatentHeight, LatentWidth], dtype: ScalarType.Float32, generator: generator);

    /// <summary>The model's velocity for latents <paramref name="x"/> [G, N+1, C, h, w] at noise level <paramref name="sigma"/>, float32.</summary>
    public Tensor Velocity(Tensor x, float sigma)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var scope = NewDisposeScope();
        var tokens = LatentPacking.AppendCondition(LatentPacking.Pack(x), conditionTokens);
        var t = full([GroupSize], sigma, dtype: ScalarType.Float32);
        var prediction = model.Transformer.forward(tokens, textEmbeddings, textMask, t, frames);
        var v = LatentPacking.OutputPart(prediction, outputTokens).to(ScalarType.Float32);
        return LatentPacking.Unpack(v, Layers + 1, Channels, LatentHeight, LatentWidth).MoveToOuterDisposeScope();
    }

    /// <summary>Decodes final latents [G, N+1, C, h, w] into G layer stacks (frame 0, the regenerated composite, is dropped).</summary>
    public IReadOnlyList<LayerStack> Decode(Tensor latents)
    {
        ArgumentNullException.ThrowIfNull(latents);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var layerLatents = latents.narrow(1, 1, Layers).reshape(GroupSize * Layers, Channels, LatentHeight, LatentWidth);
        var decoded = model.Vae.Decode(model.Vae.Denormalize(layerLatents)).clamp(-1f, 1f);
        var names = Enumerable.Range(0, Layers).Select(i => i == 0 ? "background" : $"layer {i}").ToArray();
        return Enumerable.Range(0, GroupSize)
            .Select(g => LayerTensors.ToStack(decoded.narrow(0, g * Layers, Layers), names))
            .ToArray();
    }

    public void Dispose()
    {
        conditionTokens.Dispose();
        textEmbeddings.Dispose();
        textMask.Dispose();
    }
}
