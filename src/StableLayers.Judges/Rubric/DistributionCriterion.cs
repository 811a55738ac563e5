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
    /// beyond that pays a policy for inflating foreground layers with invented content, and a higher cap pays for
    /// faint haze that lifts a small layer's share. A blank foreground layer (coverage below 0.5%) is a requested
    /// layer wasted; scaling by the blank share alone would be a cliff (the other criteria pay a little for smaller,
    /// cleaner layers all the way down), so the fill ramp charges for shrinking from 2% down, where a blank layer
    /// costs at least three quarters of its share. One layer, or nothing visible, scores 0. The measurements behind
    /// each choice are in docs/JUDGE.md ("Rubric judge implementation").
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
