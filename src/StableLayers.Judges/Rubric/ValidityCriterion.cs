using StableLayers.Metrics;

namespace StableLayers.Judges.Rubric;

/// <summary>Content validity: the layers recomposite to the input, with no glazed layers.</summary>
public static class ValidityCriterion
{
    /// <summary>Reconstruction error at which the first factor falls to 1/2; 0.05 mean L1 is a clearly visible difference.</summary>
    public const double ReconstructionScale = 0.05;

    /// <summary>
    /// Score = 1 / (1 + recon / 0.05) * (1 - 0.5 * glazed / (N - 1)). The first factor is "1 - reconstruction error"
    /// (it equals 1 - recon/0.05 to first order) stretched so that the small errors real decompositions make are
    /// not all rounded to the top bucket. It decays like 1/recon rather than exponentially: with exp(-recon/0.05) a
    /// policy whose error is already ~0.1 (the tiny base) sits on the floor, where losing fidelity costs almost no
    /// reward, and GRPO traded reconstruction away for the other criteria (seen in a 60-step run: best-match L1
    /// 0.085 -> 0.153 while the reward rose). Glazed layers
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
        double score = 1.0 / (1.0 + (recon / ReconstructionScale)) * (1 - (0.5 * glazedShare));
        return new ValidityTerms(recon, quality.Glazed, Math.Clamp(score, 0, 1));
    }
}
