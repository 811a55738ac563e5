using static TorchSharp.torch;

namespace StableLayers.Model.Pipeline;

/// <summary>
/// Bookkeeping between the sampled batch and per-sample layer stacks. Samples are ordered input-major:
/// sample s = input * imagesPerPrompt + copy (the order diffusers gives prompt embeddings with
/// repeat + view). Each sample has N + 1 frames; frame 0 (the regenerated composite) is dropped before
/// decoding, so decoded images come N per sample. The public pipeline slices the decoded list with the
/// pre-drop count N + 1, which mixes samples whenever the batch has more than one; this class does not.
/// </summary>
public static class LayerRegrouping
{
    /// <summary>Index of copy <paramref name="copy"/> of input <paramref name="input"/> in the sampled batch.</summary>
    public static int SampleIndex(int input, int copy, int imagesPerPrompt)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(imagesPerPrompt);
        ArgumentOutOfRangeException.ThrowIfNegative(input);
        ArgumentOutOfRangeException.ThrowIfNegative(copy);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(copy, imagesPerPrompt);
        return (input * imagesPerPrompt) + copy;
    }

    /// <summary>
    /// [S, N + 1, C, h, w] unpacked latents to the layer frames to decode, [S * N, C, h, w], sample-major
    /// (frame 0 of every sample removed).
    /// </summary>
    public static Tensor DropCompositeFrame(Tensor latents)
    {
        ArgumentNullException.ThrowIfNull(latents);
        if (latents.dim() != 5 || latents.shape[1] < 2)
        {
            throw new ArgumentException($"expected [S, N+1, C, h, w] with N >= 1, got [{string.Join(",", latents.shape)}]", nameof(latents));
        }

        long s = latents.shape[0], layers = latents.shape[1] - 1;
        using var scope = NewDisposeScope();
        return latents
            .narrow(1, 1, layers)
            .reshape(s * layers, latents.shape[2], latents.shape[3], latents.shape[4])
            .MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Splits decoded layers [S * N, ...] (after <see cref="DropCompositeFrame"/>) into S stacks of [N, ...],
    /// stack i belonging to sample i. Counts with the post-drop N.
    /// </summary>
    public static IReadOnlyList<Tensor> SplitPerSample(Tensor decoded, int samples, int layers)
    {
        ArgumentNullException.ThrowIfNull(decoded);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(samples);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(layers);
        if (decoded.dim() < 1 || decoded.shape[0] != (long)samples * layers)
        {
            throw new ArgumentException(
                $"expected {samples} samples x {layers} layers = {(long)samples * layers} decoded images, got [{string.Join(",", decoded.shape)}]",
                nameof(decoded));
        }

        var stacks = new Tensor[samples];
        for (int i = 0; i < samples; i++)
        {
            stacks[i] = decoded.narrow(0, (long)i * layers, layers);
        }

        return stacks;
    }
}
