using StableLayers.Metrics;

namespace StableLayers.Judges.Rubric;

/// <summary>Content validity: the layers recomposite to the input, with no glazed layers.</summary>
public static class ValidityCriterion
{
    /// <summary>Reconstruction error at which the first factor falls to 1/2; 0.05 mean L1 is a clearly visible difference.</summary>
    public const double ReconstructionScale = 0.05;

    /// <summary>
    /// Score = 1 / (1 + recon / 0.05) / (1 + invented / 0.1) * (1 - 0.5 * glazed / (N - 1)). The first factor is "1 - reconstruction error"
    /// (it equals 1 - recon/0.05 to first order) stretched so that the small errors real decompositions make are
    /// not all rounded to the top bucket. It decays like 1/recon rather than exponentially: with exp(-recon/0.05) a
    /// policy whose error is already ~0.1 (the tiny base) sits on the floor, where losing fidelity costs almost no
    /// reward, and GRPO trades reconstruction away for the other criteria (docs/JUDGE.md). Glazed layers
    /// (washes and copies of the input, EVALUATION.md metric 4) recomposite correctly yet invent content, so each
    /// removes up to half of its share of the foreground layers.
    /// </summary>
    public static ValidityTerms Measure(IReadOnlyList<LayerPlanes> planes, float[] inputOnWhite, LayerQualityReport quality)
    {
        ArgumentNullException.ThrowIfNull(planes);
        ArgumentNullException.ThrowIfNull(inputOnWhite);
        ArgumentNullException.ThrowIfNull(quality);
        double recon = StackMetrics.ReconstructionL1(planes, inputOnWhite);
        int n = planes.Count;
        double glazedShare = n < 2 ? 0 : quality.Glazed / (double)(n - 1);
        double invented = InventedColourError(planes, inputOnWhite);
        double score = 1.0 / (1.0 + (recon / ReconstructionScale)) / (1.0 + (invented / InventedScale)) * (1 - (0.5 * glazedShare));
        return new ValidityTerms(recon, quality.Glazed, Math.Clamp(score, 0, 1)) { InventedError = invented };
    }

    /// <summary>Visible alpha from which a layer alone makes a pixel.</summary>
    public const float OpaqueVisible = 0.98f;

    /// <summary>Foreground colour error at which the "nothing invented" factor falls to 1/2.</summary>
    public const double InventedScale = 0.1;

    /// <summary>
    /// "Nothing invented", per layer: for each foreground layer, the mean absolute difference between its colour and
    /// the input over the pixels it alone makes in the composite (visible alpha at least 0.98), averaged over the
    /// layers that make any. The canvas-wide reconstruction error dilutes a wrong object by the area of the
    /// correct background around it; this does not, so a large invented blob costs as much as it is wrong.
    /// The mean is over all requested foreground layers, a layer that makes nothing counting as error 0 (it invents
    /// nothing): averaged over the visible layers only (rubric/v2), emptying the worst layer lowered the mean error
    /// of the rest, so a policy was paid for turning a poor layer into a blank one.
    /// </summary>
    public static double InventedColourError(IReadOnlyList<LayerPlanes> planes, float[] inputOnWhite)
    {
        ArgumentNullException.ThrowIfNull(planes);
        ArgumentNullException.ThrowIfNull(inputOnWhite);
        if (planes.Count < 2)
        {
            return 0;
        }

        int px = planes[0].PixelCount;
        var transmit = new float[px];
        Array.Fill(transmit, 1f);
        double sum = 0;
        int counted = 0;
        for (int k = planes.Count - 1; k >= 1; k--)
        {
            var layer = planes[k];
            double err = 0, mass = 0;
            for (int p = 0; p < px; p++)
            {
                float a = layer.Alpha[p];
                if (a <= 0)
                {
                    continue;
                }

                float t = transmit[p];
                transmit[p] = t * (1 - a);

                // Only where the layer alone makes the pixel (nearly opaque, nearly uncovered) must its colour be the
                // input's: translucent layers and soft edges legitimately blend with what lies below.
                if (a * t < OpaqueVisible)
                {
                    continue;
                }

                for (int c = 0; c < 3; c++)
                {
                    err += Math.Abs((layer.OnBlack[(3 * p) + c] / a) - inputOnWhite[(3 * p) + c]);
                }

                mass += 1;
            }

            // Layers that make under a thousandth of the canvas are the blank-layer criterion's business, not this one's.
            if (mass > 0.001 * px)
            {
                sum += err / (3 * mass);
                counted++;
            }
        }

        return counted == 0 ? 0 : sum / (planes.Count - 1);
    }
}
