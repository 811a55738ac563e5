namespace StableLayers.Judges.Rubric;

/// <summary>
/// Everything the rubric judge measured on one candidate: the five unrounded criterion values in [0, 1]
/// (<see cref="Scores"/>) and the terms each was computed from, for reports and debugging.
/// </summary>
public sealed record RubricBreakdown(
    SeparationTerms Separation,
    AlphaTerms Alpha,
    BackgroundTerms Background,
    DistributionTerms Distribution,
    ValidityTerms Validity)
{
    public CriterionScores Scores { get; } = new(Separation.Score, Alpha.Score, Background.Score, Distribution.Score, Validity.Score);
}

/// <param name="Overlap">Share of the foreground alpha mass hidden under other foreground layers.</param>
/// <param name="Redundancy">Mean over non-empty foreground layers of the share of the layer's mass that repeats what is already below it.</param>
public sealed record SeparationTerms(double Overlap, double Redundancy, double Score);

/// <param name="SoftShare">Mean over non-empty layers of the share of visible alpha (above 0.05) that is not within 0.05 of 1.</param>
/// <param name="SpeckShare">Mean share of a layer's alpha mass held by specks (components smaller than the EVALUATION.md speck size).</param>
/// <param name="HazeShare">Mean share of a layer's transparent area (alpha at most 0.1) holding faint colour away from any shape.</param>
public sealed record AlphaTerms(double SoftShare, double SpeckShare, double HazeShare, double Score);

/// <param name="OpaqueShare">Share of layer 0 that is opaque (alpha above 0.9).</param>
/// <param name="Smoothness">1 when layer 0 under the foreground is no busier than around it, towards 0 when it is much busier.</param>
/// <param name="Consistency">1 when the mean colour of layer 0 under the foreground equals that of its surroundings.</param>
/// <param name="Distinctness">Share of the opaque foreground area where layer 0 does not still show the input (the foreground) there.</param>
public sealed record BackgroundTerms(double OpaqueShare, double Smoothness, double Consistency, double Distinctness, double Score);

/// <param name="Evenness">Pielou evenness of the layers' visible contributions (null for one layer or nothing visible).</param>
/// <param name="Blank">Blank foreground layers (coverage below 0.5%).</param>
/// <param name="Fill">Mean over foreground layers of min(1, coverage / 2%): 1 when every requested layer holds something.</param>
public sealed record DistributionTerms(double? Evenness, int Blank, double Fill, double Score);

/// <param name="ReconstructionL1">Mean |composite on white - input| (EVALUATION.md metric 8).</param>
/// <param name="Glazed">Glazed foreground layers (wash or duplicate of the input, EVALUATION.md metric 4).</param>
public sealed record ValidityTerms(double ReconstructionL1, int Glazed, double Score)
{
    /// <summary>Mean visible-weighted colour error of the foreground layers against the input (<see cref="ValidityCriterion.InventedColourError"/>).</summary>
    public double InventedError { get; init; }
}
