using StableLayers.Metrics;

namespace StableLayers.Judges.Rubric;

/// <summary>Feature distribution: content spread over the requested layers, no blank layers.</summary>
public static class DistributionCriterion
{
    /// <summary>Evenness at which content counts as spread: a background with a few objects of a few percent each is ~0.5.</summary>
    public const double SpreadEvenness = 0.5;

    /// <summary>
    /// Score = min(1, evenness / 0.5) * (1 - blank / (N - 1)). Evenness (EVALUATION.md metric 5, Pielou's J of each
    /// layer's visible contribution) is 0 when one layer holds everything and 1 when all contribute equally. Good
    /// designs are not equal-area (a background under small objects has J ~ 0.5), so the criterion is full once
    /// content is spread that much: rewarding evenness beyond it paid a GRPO policy for inflating foreground layers
    /// with invented content. Every blank foreground layer (coverage below 0.5%) is a requested layer wasted, so the
    /// blank share scales it down. One layer, or nothing visible, scores 0 ("everything in one layer").
    /// </summary>
    public static DistributionTerms Measure(IReadOnlyList<LayerPlanes> planes, LayerQualityReport quality)
    {
        ArgumentNullException.ThrowIfNull(planes);
        ArgumentNullException.ThrowIfNull(quality);
        double? evenness = StackMetrics.Evenness(planes);
        int n = planes.Count;
        double score = n < 2 ? 0 : Math.Min(1.0, (evenness ?? 0) / SpreadEvenness) * (1 - (quality.Blank / (double)(n - 1)));
        return new DistributionTerms(evenness, quality.Blank, Math.Clamp(score, 0, 1));
    }
}
