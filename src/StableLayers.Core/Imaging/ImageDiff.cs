namespace StableLayers.Core.Imaging;

/// <summary>Pixel-level comparisons used by round-trip checks.</summary>
public static class ImageDiff
{
    /// <summary>Mean absolute difference over all RGBA channels, in [0,1].</summary>
    public static double MeanAbs(RgbaImage a, RgbaImage b, bool includeAlpha = true)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (!a.SameSize(b))
        {
            throw new ArgumentException($"sizes differ: {a.Width}x{a.Height} vs {b.Width}x{b.Height}");
        }

        long sum = 0, n = 0;
        for (int i = 0; i < a.Pixels.Length; i++)
        {
            if (!includeAlpha && (i & 3) == 3)
            {
                continue;
            }

            sum += Math.Abs(a.Pixels[i] - b.Pixels[i]);
            n++;
        }

        return sum / (255.0 * n);
    }
}
