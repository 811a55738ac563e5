using StableLayers.Core.Layers;

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

    /// <summary>
    /// Over every layer of two stacks with the same layer count and sizes: the largest and the mean absolute
    /// channel difference, in bytes (0..255).
    /// </summary>
    public static (int Max, double Mean) LayerBytes(LayerStack a, LayerStack b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Count != b.Count)
        {
            throw new ArgumentException($"layer counts differ: {a.Count} vs {b.Count}");
        }

        int max = 0;
        long sum = 0, n = 0;
        for (int k = 0; k < a.Count; k++)
        {
            if (!a[k].SameSize(b[k]))
            {
                throw new ArgumentException($"layer {k} sizes differ: {a[k].Width}x{a[k].Height} vs {b[k].Width}x{b[k].Height}");
            }

            var pa = a[k].Pixels;
            var pb = b[k].Pixels;
            for (int i = 0; i < pa.Length; i++)
            {
                int d = Math.Abs(pa[i] - pb[i]);
                max = Math.Max(max, d);
                sum += d;
                n++;
            }
        }

        return (max, (double)sum / n);
    }
}
