namespace StableLayers.Model.Pipeline;

/// <summary>
/// Working size for an input image: about resolution^2 pixels at the image's aspect ratio, each side a
/// multiple of <c>multiple</c> (diffusers' calculate_dimensions with 32, then floored to the VAE factor x
/// patch = 16, which is a no-op because <c>multiple</c> must itself be a multiple of 16).
/// </summary>
public readonly record struct ResolutionBucket(int Width, int Height)
{
    /// <summary>Pixels per latent cell (the VAE's spatial compression).</summary>
    public const int VaeScaleFactor = 8;

    /// <summary>Pixels per packed token side: VAE factor x 2x2 patch.</summary>
    public const int PixelsPerToken = VaeScaleFactor * LatentPacking.PatchSize;

    /// <summary>Latent height, Height / 8.</summary>
    public int LatentHeight => Height / VaeScaleFactor;

    /// <summary>Latent width, Width / 8.</summary>
    public int LatentWidth => Width / VaeScaleFactor;

    /// <summary>Packed tokens per frame, which is also the condition image's token count (mu's input).</summary>
    public int TokensPerFrame => Height / PixelsPerToken * (Width / PixelsPerToken);

    /// <summary>
    /// The bucket for an image of <paramref name="width"/> x <paramref name="height"/>. <paramref name="resolution"/>
    /// is 640 or 1024 for the released model; small values serve tests. Rounding is half-to-even like Python's round().
    /// Unlike diffusers, a side never rounds down to 0 (extreme aspect ratios get one multiple instead).
    /// </summary>
    /// <param name="pixelsPerToken">VAE compression x patch of the model (16 for the released model; smaller for tiny presets).</param>
    public static ResolutionBucket For(int width, int height, int resolution, int multiple = 32, int pixelsPerToken = PixelsPerToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(resolution);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(multiple);
        if (pixelsPerToken <= 0 || multiple % pixelsPerToken != 0)
        {
            throw new ArgumentException($"multiple {multiple} must be a multiple of {pixelsPerToken} (VAE factor x patch)", nameof(multiple));
        }

        double ratio = (double)width / height;
        double w = Math.Sqrt((double)resolution * resolution * ratio);
        double h = w / ratio;
        return new ResolutionBucket(RoundToMultiple(w, multiple), RoundToMultiple(h, multiple));
    }

    private static int RoundToMultiple(double value, int multiple) =>
        Math.Max(1, (int)Math.Round(value / multiple, MidpointRounding.ToEven)) * multiple;
}
