using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Model.Schedulers;
using StableLayers.Model.Transformer;
using static TorchSharp.torch;

namespace StableLayers.Model.Pipeline;

/// <summary>
/// What a batch of samples shares: each condition image's latent tokens, the prompt embeddings and the frame
/// layout for N layers. Rows are image-major, then prompt, then copy: row = (image * prompts + prompt) * copies + copy.
/// <see cref="Velocity"/> is the one model call of the pipeline: `decompose` (rows = prompt and negative prompt)
/// and GRPO sampling and updates (rows = G candidates) all go through it, which is what makes the first GRPO
/// update exactly on-policy.
/// </summary>
public sealed class LayeredConditioning : IDisposable
{
    private readonly LayeredModel model;
    private readonly Tensor conditionTokens;
    private readonly Tensor textEmbeddings;
    private readonly Tensor textMask;
    private readonly IReadOnlyList<FrameShape> frames;
    private readonly long outputTokens;

    private LayeredConditioning(LayeredModel model, int batch, int layers, int channels, int latentHeight, int latentWidth,
        Tensor conditionTokens, Tensor textEmbeddings, Tensor textMask)
    {
        this.model = model;
        Batch = batch;
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

    /// <summary>Rows of every model call: images x prompts x copies.</summary>
    public int Batch { get; }

    public int Layers { get; }

    public int Channels { get; }

    public int LatentHeight { get; }

    public int LatentWidth { get; }

    /// <summary>Image tokens per row (output frames + condition), for FLOP counts.</summary>
    public long ImageTokens => outputTokens + conditionTokens.shape[1];

    public long TextTokens => textEmbeddings.shape[1];

    /// <summary>
    /// Encodes <paramref name="image"/> (already at a size the model accepts) and the distinct
    /// <paramref name="prompts"/> once, for <paramref name="copies"/> rows per prompt.
    /// </summary>
    public static LayeredConditioning Create(LayeredModel model, RgbaImage image, int layers, IReadOnlyList<string> prompts, int copies = 1)
    {
        ArgumentNullException.ThrowIfNull(image);
        return Create(model, [image], layers, prompts, copies);
    }

    /// <summary>
    /// Encodes several condition <paramref name="images"/> (all the same size, one the model accepts) in one VAE
    /// batch and the distinct <paramref name="prompts"/> once; every image gets every prompt, each for
    /// <paramref name="copies"/> rows.
    /// </summary>
    public static LayeredConditioning Create(LayeredModel model, IReadOnlyList<RgbaImage> images, int layers, IReadOnlyList<string> prompts, int copies = 1)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(prompts);
        if (layers < 1 || images.Count < 1 || prompts.Count < 1 || copies < 1)
        {
            throw new ArgumentException("layers, images, prompts and copies must each be at least 1");
        }

        if (images.Any(i => i.Width != images[0].Width || i.Height != images[0].Height))
        {
            throw new ArgumentException($"condition images of one batch must share a size; got {string.Join(", ", images.Select(i => $"{i.Width}x{i.Height}").Distinct())}", nameof(images));
        }

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        int rowsPerImage = prompts.Count * copies;
        int batch = images.Count * rowsPerImage;
        var device = model.Device;
        var pixels = cat(images.Select(i => LayerTensors.FromImage(i, device).unsqueeze(0)).ToArray(), 0);
        var latent = model.Vae.Normalize(model.Vae.EncodeMean(pixels));
        int c = (int)latent.shape[1], h = (int)latent.shape[2], w = (int)latent.shape[3];
        var cond = LatentPacking.Pack(latent.unsqueeze(1)).repeat_interleave(rowsPerImage, 0).contiguous();
        var text = model.Prompts.Encode(prompts);
        // Precomputed embeddings are read on the host; the tiny text encoder already runs on the model's device.
        var promptEmb = text.Embeddings.to(device);
        var promptMask = text.Mask.to(device);
        var emb = copies == 1 ? promptEmb : promptEmb.repeat_interleave(copies, 0);
        var mask = copies == 1 ? promptMask : promptMask.repeat_interleave(copies, 0);
        if (images.Count > 1)
        {
            emb = emb.repeat(images.Count, 1, 1);
            mask = mask.repeat(images.Count, 1);
        }

        return new LayeredConditioning(model, batch, layers, c, h, w,
            cond.MoveToOuterDisposeScope(), emb.contiguous().MoveToOuterDisposeScope(), mask.contiguous().MoveToOuterDisposeScope());
    }

    /// <summary>The flow-matching schedule for this condition's size (mu from its tokens per frame).</summary>
    public FlowMatchSchedule Schedule(int steps) =>
        FlowMatchScheduler.ForConditionTokens(LatentPacking.TokensPerFrame(LatentHeight, LatentWidth)).Schedule(steps);

    /// <summary>Seeded starting noise, [rows, N+1, C, h, w] float32, on the model's device (the generator must be there too).</summary>
    public Tensor InitialNoise(Generator generator, int rows) =>
        randn([rows, Layers + 1, Channels, LatentHeight, LatentWidth], dtype: ScalarType.Float32, device: conditionTokens.device, generator: generator);

    /// <summary>
    /// The model's velocity, float32 [Batch, N+1, C, h, w], for latents <paramref name="x"/> of Batch rows (or one
    /// row, shared by every row) at noise level <paramref name="sigma"/>.
    /// </summary>
    public Tensor Velocity(Tensor x, float sigma)
    {
        using var scope = NewDisposeScope();
        return Unpack(PackedVelocity(x, sigma)).MoveToOuterDisposeScope();
    }

    /// <summary>The velocity as output tokens [Batch, tokens, channels] (true CFG combines rows in this form).</summary>
    public Tensor PackedVelocity(Tensor x, float sigma)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var scope = NewDisposeScope();
        var packed = LatentPacking.Pack(x);
        var tokens = LatentPacking.AppendCondition(x.shape[0] == Batch ? packed : packed.expand(Batch, -1, -1), conditionTokens);
        // Rounded as diffusers' pipeline rounds it for the model's dtype (bf16: bf16(bf16(1000 sigma) / 1000)).
        var t = ModelTimestep.FromSigma(sigma, Batch, model.Transformer.DType, tokens.device);
        var prediction = model.Transformer.forward(tokens, textEmbeddings, textMask, t, frames);
        return LatentPacking.OutputPart(prediction, outputTokens).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>Output tokens [rows, tokens, channels] back to latents [rows, N+1, C, h, w].</summary>
    public Tensor Unpack(Tensor tokens) => LatentPacking.Unpack(tokens, Layers + 1, Channels, LatentHeight, LatentWidth);

    /// <summary>Decodes final latents [rows, N+1, C, h, w] into one layer stack per row (frame 0, the regenerated composite, is dropped).</summary>
    public IReadOnlyList<LayerStack> Decode(Tensor latents)
    {
        ArgumentNullException.ThrowIfNull(latents);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        int rows = (int)latents.shape[0];
        var layerLatents = latents.narrow(1, 1, Layers).reshape(rows * Layers, Channels, LatentHeight, LatentWidth);
        var decoded = model.Vae.Decode(model.Vae.Denormalize(layerLatents)).clamp(-1f, 1f);
        var names = Enumerable.Range(0, Layers).Select(i => i == 0 ? "background" : $"layer {i}").ToArray();
        return LayerTensors.ToStacks(decoded, rows, names);
    }

    public void Dispose()
    {
        conditionTokens.Dispose();
        textEmbeddings.Dispose();
        textMask.Dispose();
    }
}
