using StableLayers.Core.Layers;
using StableLayers.Metrics;

namespace StableLayers.Judges.Rubric;

/// <summary>Semantic separation: each foreground layer should add something of its own, not repeat or bury other layers.</summary>
public static class SeparationCriterion
{
    /// <summary>Weight of the overlap term: overlap is legitimate in designs (text on a plate), so it only nudges the score.</summary>
    public const double OverlapWeight = 0.25;

    /// <summary>
    /// Score = (1 - 0.25 * overlap) * (1 - redundancy).
    /// <para>Redundancy: a foreground pixel is redundant when its colour matches what the layers below already
    /// show there (weighted by its alpha and the alpha below); a layer that duplicates another layer, the whole
    /// input (a glazed copy) or content left in the background is largely redundant, while a real object differs
    /// from what lies behind it. Averaged over all requested foreground layers, so it reads as "the share of layers
    /// that are duplicates"; a blank or glazed layer (EVALUATION.md metrics 3 and 4) holds no object of its own and
    /// counts as wholly redundant. Averaging over the non-empty layers only (rubric/v2) made a layer that repeated
    /// some of the background cheaper to empty than to keep.</para>
    /// <para>Overlap: the share of foreground alpha mass hidden under foreground layers above it, i.e. content
    /// nobody sees in the input and that the decomposition had to invent or split; weighted lightly.</para>
    /// <para>A candidate whose foreground layers are all empty separated nothing (everything stayed in one layer)
    /// and scores 0, as does a single-layer candidate.</para>
    /// </summary>
    public static SeparationTerms Measure(LayerStack stack, IReadOnlyList<LayerPlanes> planes, LayerQualityReport quality)
    {
        ArgumentNullException.ThrowIfNull(stack);
        ArgumentNullException.ThrowIfNull(planes);
        ArgumentNullException.ThrowIfNull(quality);
        int n = planes.Count;
        int pixels = planes[0].PixelCount;
        if (n < 2)
        {
            return new SeparationTerms(0, 0, 0);
        }

        // Bottom to top: the composite of the layers below k (premultiplied colour + alpha) vs layer k's straight colour.
        var acc = new float[pixels * 3];
        var accA = new float[pixels];
        var mass = new double[n];
        double redundancySum = 0;
        int nonEmpty = 0;
        for (int k = 0; k < n; k++)
        {
            var px = stack[k].Pixels;
            var a = planes[k].Alpha;
            var premul = planes[k].OnBlack;
            double m = 0, redundant = 0;
            for (int i = 0; i < pixels; i++)
            {
                float ak = a[i];
                if (ak == 0f)
                {
                    continue;
                }

                int o = i * 3;
                if (k > 0)
                {
                    m += ak;
                    float below = accA[i];
                    if (below > 0f)
                    {
                        float inv = 1f / below;
                        float sim = ColourMatch.Similarity(
                            px[i * 4] * (1f / 255f), px[(i * 4) + 1] * (1f / 255f), px[(i * 4) + 2] * (1f / 255f),
                            acc[o] * inv, acc[o + 1] * inv, acc[o + 2] * inv);
                        redundant += ak * below * sim;
                    }
                }

                float keep = 1f - ak;
                acc[o] = premul[o] + (acc[o] * keep);
                acc[o + 1] = premul[o + 1] + (acc[o + 1] * keep);
                acc[o + 2] = premul[o + 2] + (acc[o + 2] * keep);
                accA[i] = ak + (accA[i] * keep);
            }

            mass[k] = m;
            if (k > 0 && m > 0)
            {
                nonEmpty++;
                redundancySum += quality.Layers[k].Blank || quality.Layers[k].Glazed ? 1 : redundant / m;
            }
            else if (k > 0)
            {
                redundancySum += 1;
            }
        }

        // Top to bottom over the foreground only: how much of each layer the foreground layers above it hide.
        var transmit = accA; // reuse: every value is overwritten
        Array.Fill(transmit, 1f);
        double hidden = 0, fgMass = 0;
        for (int k = n - 1; k >= 1; k--)
        {
            var a = planes[k].Alpha;
            for (int i = 0; i < pixels; i++)
            {
                float ak = a[i];
                if (ak == 0f)
                {
                    continue;
                }

                hidden += ak * (1.0 - transmit[i]);
                transmit[i] *= 1f - ak;
            }

            fgMass += mass[k];
        }

        if (nonEmpty == 0)
        {
            return new SeparationTerms(0, 0, 0);
        }

        double overlap = hidden / fgMass;
        double redundancy = redundancySum / (n - 1);
        double score = (1 - (OverlapWeight * overlap)) * (1 - redundancy);
        return new SeparationTerms(overlap, redundancy, Math.Clamp(score, 0, 1));
    }
}
