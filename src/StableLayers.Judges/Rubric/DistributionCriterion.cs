using StableLayers.Metrics;

namespace StableLayers.Judges.Rubric;

/// <summary>Feature distribution: content spread over the requested layers, no blank layers.</summary>
public static class DistributionCriterion
{
    /// <summary>Evenness from which content counts as spread over the layers rather than held by one of them.</summary>
    public const double SpreadEvenness = 0.1;

    /// <summary>Coverage (alpha &gt; 0.1) from which a foreground layer counts as filled: 4x the blank threshold.</summary>
    public const double FilledCoverage = 0.02;

    /// <summary>
    /// Score = min(1, evenness / 0.1) * mean fill of the foreground layers, fill = min(1, coverage / 2%). Evenness (EVALUATION.md metric 5, Pielou's J of each
    /// layer's visible contribution) is 0 when one layer holds everything and 1 when all contribute equally. Good
    /// designs are not equal-area (a background under small objects has J ~ 0.5, a line of small text J ~ 0.1), so
    /// the criterion asks only that content is not all in one layer and that no layer is blank. Rewarding evenness
    /// beyond that paid a GRPO policy for inflating foreground layers with invented content: among 8 samples of the
    /// tiny base per design, full-range evenness ranked worse decompositions higher (within-design Spearman +0.41
    /// against best-match L1, 12 designs of synth seed 3000); with the 0.1 cap the reward ranks them the right way
    /// (-0.20) and against bad layers (-0.55). A higher cap (0.2) also paid for faint haze that lifts a small layer's
    /// share, ranking hazed ground truth above the clean one. A blank foreground layer (coverage below 0.5%) is a
    /// requested layer wasted. Scaling by the blank share alone was a cliff: the other criteria pay a little for
    /// smaller, cleaner layers all the way down, and only crossing 0.5% cost anything, so a GRPO policy drifted into
    /// blank layers (held-out bad layers 0.04 -> 0.19 in 60 steps). The fill ramp charges for shrinking from 2%
    /// down, where a blank layer costs at least three quarters of its share. One layer, or nothing visible, scores 0.
    /// </summary>
    public static DistributionTerms Measure(IReadOnlyList<LayerPlanes> planes, LayerQualityReport quality)
    {
        ArgumentNullException.ThrowIfNull(planes);
        ArgumentNullException.ThrowIfNull(quality);
        double? evenness = StackMetrics.Evenness(planes);
        int n = planes.Count;
        double fill = n < 2 ? 0 : quality.Layers.Skip(1).Average(l => Math.Min(1.0, l.Coverage / FilledCoverage));
        double score = Math.Min(1.0, (evenness ?? 0) / SpreadEvenness) * fill;
        return new DistributionTerms(evenness, quality.Blank, fill, Math.Clamp(score, 0, 1));
    }
}
