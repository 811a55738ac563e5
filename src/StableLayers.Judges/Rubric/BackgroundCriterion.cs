using StableLayers.Metrics;

namespace StableLayers.Judges.Rubric;

/// <summary>Background inpainting: layer 0 is a complete background with the foreground removed and filled in naturally.</summary>
public static class BackgroundCriterion
{
    /// <summary>Gradient floor in the smoothness ratio, so two nearly flat regions do not look very different.</summary>
    public const double GradientFloor = 0.01;

    /// <summary>Mean colour difference (in [0,1]) between hole and surroundings at which consistency reaches 0.</summary>
    public const double ColourScale = 0.25;

    /// <summary>
    /// The "holes" H are the pixels the candidate's own foreground covers (union alpha &gt; 0.1), grown by 1 px so
    /// seams at their rim count; the surroundings R are a ring of max(2, min(W,H)/40) px around them.
    /// Score = opaque * (smooth + consistent + distinct) / 3, where
    /// <list type="bullet">
    /// <item>opaque = share of layer 0 with alpha &gt; 0.9 (a background with holes is not complete; multiplies all);</item>
    /// <item>smooth = 1 - max(0, g_H - g_R) / (g_H + g_R + 0.01), g = mean gradient magnitude of layer 0 on white:
    /// left-over object edges or a seam make the hole busier than its surroundings, while a textured background
    /// filled with texture is not penalised;</item>
    /// <item>consistent = 1 - min(1, |mean colour of H - mean colour of R| / 0.25): a fill of the wrong colour;</item>
    /// <item>distinct = 1 - mean colour match between layer 0 and the input where the foreground is opaque (alpha
    /// &gt; 0.9): there the input shows the foreground, so a background that still matches it was not inpainted.</item>
    /// </list>
    /// With an empty foreground nothing was removed from layer 0 (it is the whole input): smooth and consistent are
    /// vacuously 1 and distinct is 0, so such a candidate cannot win this criterion by having no holes to fill.
    /// </summary>
    public static BackgroundTerms Measure(IReadOnlyList<LayerPlanes> planes, float[] inputOnWhite)
    {
        ArgumentNullException.ThrowIfNull(planes);
        ArgumentNullException.ThrowIfNull(inputOnWhite);
        var bg = planes[0];
        int w = bg.Width, h = bg.Height, pixels = bg.PixelCount;
        int opaqueCount = 0;
        foreach (byte a in bg.AlphaBytes)
        {
            if (a >= Thresholds.Opaque)
            {
                opaqueCount++;
            }
        }

        double opaque = opaqueCount / (double)pixels;

        // Union alpha of the foreground: 1 - prod(1 - a_k).
        var transmit = new float[pixels];
        Array.Fill(transmit, 1f);
        for (int k = 1; k < planes.Count; k++)
        {
            var a = planes[k].Alpha;
            for (int i = 0; i < pixels; i++)
            {
                transmit[i] *= 1f - a[i];
            }
        }

        const float covered = Thresholds.Covered / 255f - 0.001f; // alpha > 0.1, as the byte threshold
        const float solid = Thresholds.Opaque / 255f - 0.001f;    // alpha > 0.9
        var mask = new bool[pixels];
        bool any = false;
        for (int i = 0; i < pixels; i++)
        {
            mask[i] = 1f - transmit[i] >= covered;
            any |= mask[i];
        }

        if (!any)
        {
            return new BackgroundTerms(opaque, 1, 1, 0, opaque * 2 / 3);
        }

        var hole = Masks.Dilate(mask, w, h, 1);
        var ring = Masks.Dilate(mask, w, h, Math.Max(2, Math.Min(w, h) / 40));
        for (int i = 0; i < pixels; i++)
        {
            ring[i] &= !hole[i];
        }

        var grad = Masks.GradientMagnitude(bg.OnWhite, w, h);
        var (gHole, meanHole) = MeanOver(grad, bg.OnWhite, hole);
        var (gRing, meanRing) = MeanOver(grad, bg.OnWhite, ring);
        double smooth = 1, consistent = 1;
        if (meanRing is not null)
        {
            smooth = 1 - (Math.Max(0, gHole - gRing) / (gHole + gRing + GradientFloor));
            double d = (Math.Abs(meanHole![0] - meanRing[0]) + Math.Abs(meanHole[1] - meanRing[1]) + Math.Abs(meanHole[2] - meanRing[2])) / 3;
            consistent = 1 - Math.Min(1, d / ColourScale);
        }

        // Where the foreground is solid the input shows the foreground: layer 0 should differ from it there.
        bool anySolid = false;
        for (int i = 0; i < pixels && !anySolid; i++)
        {
            anySolid = 1f - transmit[i] >= solid;
        }

        double match = 0;
        int count = 0;
        var l0 = bg.OnWhite;
        for (int i = 0; i < pixels; i++)
        {
            bool use = anySolid ? 1f - transmit[i] >= solid : mask[i];
            if (!use)
            {
                continue;
            }

            int o = i * 3;
            match += ColourMatch.Similarity(l0[o], l0[o + 1], l0[o + 2], inputOnWhite[o], inputOnWhite[o + 1], inputOnWhite[o + 2]);
            count++;
        }

        double distinct = 1 - (match / count);
        double score = opaque * (smooth + consistent + distinct) / 3;
        return new BackgroundTerms(opaque, smooth, consistent, distinct, Math.Clamp(score, 0, 1));
    }

    /// <summary>Mean gradient and mean RGB over a mask; the RGB is null for an empty mask.</summary>
    private static (double Gradient, double[]? Rgb) MeanOver(float[] grad, float[] rgb, bool[] mask)
    {
        double g = 0, r = 0, gg = 0, b = 0;
        int count = 0;
        for (int i = 0; i < mask.Length; i++)
        {
            if (!mask[i])
            {
                continue;
            }

            g += grad[i];
            r += rgb[i * 3];
            gg += rgb[(i * 3) + 1];
            b += rgb[(i * 3) + 2];
            count++;
        }

        return count == 0 ? (0, null) : (g / count, [r / count, gg / count, b / count]);
    }
}
