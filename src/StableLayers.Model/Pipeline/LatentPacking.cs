using static TorchSharp.torch;

namespace StableLayers.Model.Pipeline;

/// <summary>
/// Turns latent frames into transformer tokens and back. Each frame [C, h, w] is cut into 2x2 patches;
/// a patch becomes one token of C*4 channels with index c*4 + dy*2 + dx; tokens run over frames in
/// order, each frame row-major over its (h/2) x (w/2) patch grid. This is the layout of diffusers'
/// QwenImageLayeredPipeline._pack_latents and the contract with the transformer's RoPE:
/// the image sequence is [output frame 0 (composite), output frames 1..N (layers), condition image].
/// </summary>
public static class LatentPacking
{
    /// <summary>Side of the square latent patch folded into one token.</summary>
    public const int PatchSize = 2;

    /// <summary>Tokens one latent frame of h x w becomes.</summary>
    public static int TokensPerFrame(int latentHeight, int latentWidth)
    {
        CheckEven(latentHeight, latentWidth);
        return latentHeight / PatchSize * (latentWidth / PatchSize);
    }

    /// <summary>[B, F, C, h, w] latents to [B, F*(h/2)*(w/2), C*4] tokens.</summary>
    public static Tensor Pack(Tensor latents)
    {
        ArgumentNullException.ThrowIfNull(latents);
        if (latents.dim() != 5)
        {
            throw new ArgumentException($"expected [B, F, C, h, w], got [{string.Join(",", latents.shape)}]", nameof(latents));
        }

        long b = latents.shape[0], f = latents.shape[1], c = latents.shape[2], h = latents.shape[3], w = latents.shape[4];
        CheckEven(h, w);
        using var scope = NewDisposeScope();
        return latents
            .reshape(b, f, c, h / 2, 2, w / 2, 2)
            .permute(0, 1, 3, 5, 2, 4, 6) // B, F, h/2, w/2, C, dy, dx
            .reshape(b, f * (h / 2) * (w / 2), c * 4)
            .MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Inverse of <see cref="Pack"/>: [B, frames*(h/2)*(w/2), C*4] to [B, frames, C, h, w]. Unlike diffusers'
    /// _unpack_latents (which returns [B, C, F, h, w] for the VAE) frames stay on dimension 1.
    /// </summary>
    public static Tensor Unpack(Tensor tokens, int frames, int channels, int latentHeight, int latentWidth)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        CheckEven(latentHeight, latentWidth);
        long perFrame = TokensPerFrame(latentHeight, latentWidth);
        if (tokens.dim() != 3 || tokens.shape[1] != frames * perFrame || tokens.shape[2] != channels * 4L)
        {
            throw new ArgumentException(
                $"expected [B, {frames * perFrame}, {channels * 4}] for {frames} frames of {channels}x{latentHeight}x{latentWidth}, " +
                $"got [{string.Join(",", tokens.shape)}]",
                nameof(tokens));
        }

        long b = tokens.shape[0], h2 = latentHeight / 2, w2 = latentWidth / 2;
        using var scope = NewDisposeScope();
        return tokens
            .reshape(b, frames, h2, w2, channels, 2, 2)
            .permute(0, 1, 4, 2, 5, 3, 6) // B, F, C, h/2, dy, w/2, dx
            .reshape(b, frames, channels, latentHeight, latentWidth)
            .MoveToOuterDisposeScope();
    }

    /// <summary>The transformer's image input: output-frame tokens followed by the condition image's tokens.</summary>
    public static Tensor AppendCondition(Tensor outputTokens, Tensor conditionTokens)
    {
        ArgumentNullException.ThrowIfNull(outputTokens);
        ArgumentNullException.ThrowIfNull(conditionTokens);
        if (outputTokens.dim() != 3 || conditionTokens.dim() != 3 ||
            outputTokens.shape[0] != conditionTokens.shape[0] || outputTokens.shape[2] != conditionTokens.shape[2])
        {
            throw new ArgumentException(
                $"output [{string.Join(",", outputTokens.shape)}] and condition [{string.Join(",", conditionTokens.shape)}] " +
                "tokens must agree in batch and channels", nameof(conditionTokens));
        }

        return cat([outputTokens, conditionTokens], 1);
    }

    /// <summary>The prediction for the output frames only: the condition image's tokens at the end are dropped.</summary>
    public static Tensor OutputPart(Tensor prediction, long outputTokenCount)
    {
        ArgumentNullException.ThrowIfNull(prediction);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outputTokenCount);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(outputTokenCount, prediction.shape[1]);
        return prediction.narrow(1, 0, outputTokenCount);
    }

    private static void CheckEven(long h, long w)
    {
        if (h <= 0 || w <= 0 || h % PatchSize != 0 || w % PatchSize != 0)
        {
            throw new ArgumentException($"latent size {h}x{w} must be positive and even (2x2 patches)");
        }
    }
}
