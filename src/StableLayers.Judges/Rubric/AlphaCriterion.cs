using StableLayers.Metrics;

namespace StableLayers.Judges.Rubric;

/// <summary>Alpha cleanliness: crisp mattes, no speckle, no faint colour haze in what should be transparent.</summary>
public static class AlphaCriterion
{
    /// <summary>alpha within 0.05 of 0: byte &lt;= 12 (0.05 * 255 = 12.75).</summary>
    public const byte NearZero = 12;

    /// <summary>alpha within 0.05 of 1: byte &gt;= 243 (0.95 * 255 = 242.25).</summary>
    public const byte NearOne = 243;

    /// <summary>
    /// Per non-empty foreground layer (layer 0 alone when there is no foreground; an opaque background is trivially
    /// clean and would only dilute the foreground's defects):
    /// <list type="bullet">
    /// <item>soft = share of the layer's visible alpha (not within 0.05 of 0) that is not within 0.05 of 1 - the
    /// spec's "share of alpha within 0.05 of 0 or 1", taken over the layer's support rather than the canvas, where
    /// the transparent majority would hide every defect;</item>
    /// <item>speck = share of the layer's alpha mass in specks (8-connected components of alpha &gt; 0.1 smaller than
    /// max(4 px, 0.01% of the canvas), the EVALUATION.md artifact definition, as a continuous share);</item>
    /// <item>haze = share of the layer's transparent area (alpha &lt;= 0.1) with faint non-zero alpha and no shape
    /// pixel in its 3x3 neighbourhood: colour bleeding into transparency, as opposed to anti-aliased edges.</item>
    /// </list>
    /// Per layer, clean = 1 - (soft + speck + haze) / 3: the clean share minus the two penalties, weighted equally so
    /// the value stays in [0, 1] and every term still ranks candidates when another one is already at its worst.
    /// Score = mean clean over all requested foreground layers, where a blank or glazed layer (EVALUATION.md metrics
    /// 3 and 4) scores 0: it has no matte worth the name. Averaging over the non-empty layers only (rubric/v2) let
    /// a layer escape its soft, specked matte by vanishing, and GRPO on real photos, where the base's mattes are
    /// soft everywhere, raised blank layers 0.20 -> 0.35 per decomposition. The terms (soft, speck, haze) stay the
    /// means over the layers that show something, for reports.
    /// </summary>
    public static AlphaTerms Measure(IReadOnlyList<LayerPlanes> planes, LayerQualityReport quality)
    {
        ArgumentNullException.ThrowIfNull(planes);
        ArgumentNullException.ThrowIfNull(quality);
        int first = planes.Count > 1 ? 1 : 0;
        double soft = 0, speck = 0, haze = 0, clean = 0;
        int counted = 0;
        for (int k = first; k < planes.Count; k++)
        {
            var layer = planes[k];
            if (!layer.AlphaBytes.AsSpan().ContainsAnyExcept((byte)0))
            {
                continue; // nothing to measure; scores 0 below when it is a foreground layer
            }

            double s = SoftShare(layer), p = SpeckShare(layer), z = HazeShare(layer);
            soft += s;
            speck += p;
            haze += z;
            counted++;
            var defect = quality.Layers[k];
            if (k == 0 || !(defect.Blank || defect.Glazed))
            {
                clean += 1 - ((s + p + z) / 3);
            }
        }

        if (counted == 0)
        {
            return new AlphaTerms(0, 0, 0, first == 0 ? 1 : 0);
        }

        int requested = planes.Count - first;
        return new AlphaTerms(soft / counted, speck / counted, haze / counted, Math.Clamp(clean / requested, 0, 1));
    }

    /// <summary>Share of the alpha values above 0.05 that are below 0.95.</summary>
    public static double SoftShare(LayerPlanes layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        int support = 0, crisp = 0;
        foreach (byte a in layer.AlphaBytes)
        {
            if (a > NearZero)
            {
                support++;
                if (a >= NearOne)
                {
                    crisp++;
                }
            }
        }

        return support == 0 ? 0 : (support - crisp) / (double)support;
    }

    /// <summary>Share of the alpha mass in components smaller than the EVALUATION.md speck size.</summary>
    public static double SpeckShare(LayerPlanes layer) => LayerQuality.SpeckShare(layer);

    /// <summary>Share of the pixels with alpha &lt;= 0.1 that have some alpha but no pixel above 0.1 in their 3x3 neighbourhood.</summary>
    public static double HazeShare(LayerPlanes layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        int w = layer.Width, h = layer.Height;
        var a = layer.AlphaBytes;
        int transparent = 0, hazy = 0;
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                byte v = a[(y * w) + x];
                if (v >= Thresholds.Covered)
                {
                    continue;
                }

                transparent++;
                if (v > 0 && !NearShape(a, w, h, x, y))
                {
                    hazy++;
                }
            }
        }

        return transparent == 0 ? 0 : hazy / (double)transparent;
    }

    private static bool NearShape(byte[] a, int w, int h, int x, int y)
    {
        for (int yy = Math.Max(0, y - 1); yy <= Math.Min(h - 1, y + 1); yy++)
        {
            for (int xx = Math.Max(0, x - 1); xx <= Math.Min(w - 1, x + 1); xx++)
            {
                if (a[(yy * w) + xx] >= Thresholds.Covered)
                {
                    return true;
                }
            }
        }

        return false;
    }
}
