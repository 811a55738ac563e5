using System.Text.Json.Serialization;

namespace StableLayers.Judges;

/// <summary>The five rubric criteria of docs/JUDGE.md, in their fixed order.</summary>
public enum Criterion
{
    SemanticSeparation,
    AlphaCleanliness,
    BackgroundInpainting,
    FeatureDistribution,
    ContentValidity,
}

public static class Criteria
{
    public static IReadOnlyList<Criterion> All { get; } = Enum.GetValues<Criterion>();

    /// <summary>The snake_case key each criterion has in prompts, JSON replies, caches and reports.</summary>
    public static string Key(Criterion c) => c switch
    {
        Criterion.SemanticSeparation => "semantic_separation",
        Criterion.AlphaCleanliness => "alpha_cleanliness",
        Criterion.BackgroundInpainting => "background_inpainting",
        Criterion.FeatureDistribution => "feature_distribution",
        Criterion.ContentValidity => "content_validity",
        _ => throw new ArgumentOutOfRangeException(nameof(c)),
    };

    public static IReadOnlyList<string> Keys { get; } = All.Select(Key).ToArray();
}

/// <summary>Scores for the five criteria, each normalised to [0, 1] (phase 1: k/5; phase 2: k/100 or unrounded).</summary>
public sealed record CriterionScores(
    [property: JsonPropertyName("semantic_separation")] double SemanticSeparation,
    [property: JsonPropertyName("alpha_cleanliness")] double AlphaCleanliness,
    [property: JsonPropertyName("background_inpainting")] double BackgroundInpainting,
    [property: JsonPropertyName("feature_distribution")] double FeatureDistribution,
    [property: JsonPropertyName("content_validity")] double ContentValidity)
{
    public double this[Criterion c] => c switch
    {
        Criterion.SemanticSeparation => SemanticSeparation,
        Criterion.AlphaCleanliness => AlphaCleanliness,
        Criterion.BackgroundInpainting => BackgroundInpainting,
        Criterion.FeatureDistribution => FeatureDistribution,
        Criterion.ContentValidity => ContentValidity,
        _ => throw new ArgumentOutOfRangeException(nameof(c)),
    };

    public static CriterionScores FromArray(IReadOnlyList<double> values)
    {
        if (values.Count != 5)
        {
            throw new ArgumentException($"expected 5 criterion scores, got {values.Count}", nameof(values));
        }

        return new(values[0], values[1], values[2], values[3], values[4]);
    }

    public double[] ToArray() => [SemanticSeparation, AlphaCleanliness, BackgroundInpainting, FeatureDistribution, ContentValidity];

    /// <summary>Each score rounded to the nearest of 0, 1/5, ..., 1 (the integer buckets of phase 1).</summary>
    public CriterionScores Bucketed() => FromArray(ToArray().Select(v => Bucket(v) / 5.0).ToArray());

    /// <summary>The phase-1 integer 0..5 for a score in [0, 1].</summary>
    public static int Bucket(double unit) => (int)Math.Clamp(Math.Round(unit * 5.0, MidpointRounding.AwayFromZero), 0, 5);
}

/// <summary>Reward = weighted mean of the five criteria (equal weights by default).</summary>
public sealed record RewardWeights(
    [property: JsonPropertyName("semantic_separation")] double SemanticSeparation = 1,
    [property: JsonPropertyName("alpha_cleanliness")] double AlphaCleanliness = 1,
    [property: JsonPropertyName("background_inpainting")] double BackgroundInpainting = 1,
    [property: JsonPropertyName("feature_distribution")] double FeatureDistribution = 1,
    [property: JsonPropertyName("content_validity")] double ContentValidity = 1)
{
    public static RewardWeights Equal { get; } = new();

    public double Reward(CriterionScores s)
    {
        double[] w = [SemanticSeparation, AlphaCleanliness, BackgroundInpainting, FeatureDistribution, ContentValidity];
        if (w.Any(x => x < 0 || !double.IsFinite(x)) || w.Sum() <= 0)
        {
            throw new InvalidOperationException("reward weights must be finite, non-negative and not all zero");
        }

        double[] v = s.ToArray();
        double num = 0;
        for (int i = 0; i < 5; i++)
        {
            num += w[i] * v[i];
        }

        return num / w.Sum();
    }
}
