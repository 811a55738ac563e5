namespace StableLayers.Judges;

/// <summary>
/// Scores a group of candidate decompositions of one image: phase 1 (absolute rubric) per
/// candidate, then phase 2 (within-group calibration) when enabled. Implementations: the offline
/// <c>RubricJudge</c> and the OpenAI-compatible <c>VlmJudge</c>.
/// </summary>
public interface IJudge
{
    /// <summary>Identifies the judge and its settings in caches and reports, e.g. "rubric/v3" or "vlm/qwen2.5-vl@http://...".</summary>
    string Name { get; }

    Task<GroupJudgement> JudgeAsync(JudgeGroup group, CancellationToken cancellationToken = default);
}

/// <summary>Settings both judges share.</summary>
public sealed record JudgeOptions
{
    /// <summary>Phase 2 grid calibration (on by default, as in the paper).</summary>
    public bool Calibrate { get; init; } = true;

    public RewardWeights Weights { get; init; } = RewardWeights.Equal;
}
