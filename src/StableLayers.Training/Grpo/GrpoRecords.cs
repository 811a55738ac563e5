using System.Text.Json.Serialization;
using StableLayers.Judges;

namespace StableLayers.Training.Grpo;

/// <summary>Where a run stands (checkpoint/state.json). Everything random is a function of (seed, step), so this is all resume needs.</summary>
public sealed record GrpoRunState
{
    /// <summary>Optimizer steps completed.</summary>
    [JsonPropertyName("step")] public int Step { get; init; }
    [JsonPropertyName("nonfinite_in_row")] public int NonFiniteInRow { get; init; }
    [JsonPropertyName("seconds")] public double Seconds { get; init; }
    [JsonPropertyName("skipped_images")] public int SkippedImages { get; init; }
    [JsonPropertyName("judge_usage")] public JudgeUsage JudgeUsage { get; init; } = JudgeUsage.None;
}

/// <summary>One line of metrics.jsonl: what a step did and cost (NaN where a value is undefined, e.g. a skipped update).</summary>
[JsonNumberHandling(JsonNumberHandling.AllowNamedFloatingPointLiterals)]
public sealed record StepLog
{
    [JsonPropertyName("step")] public int Step { get; init; }
    [JsonPropertyName("reward_mean")] public double RewardMean { get; init; }
    [JsonPropertyName("reward_std")] public double RewardStd { get; init; }
    [JsonPropertyName("phase1_reward_mean")] public double Phase1RewardMean { get; init; }
    /// <summary>Mean final score per criterion (calibrated where available), keyed like the judge's JSON.</summary>
    [JsonPropertyName("criteria")] public IReadOnlyDictionary<string, double> Criteria { get; init; } = new Dictionary<string, double>();
    [JsonPropertyName("zero_std_ratio")] public double ZeroStdRatio { get; init; }
    [JsonPropertyName("ties_before")] public int TiesBefore { get; init; }
    [JsonPropertyName("ties_after")] public int TiesAfter { get; init; }
    [JsonPropertyName("judge_failures")] public int JudgeFailures { get; init; }
    [JsonPropertyName("dropped_groups")] public int DroppedGroups { get; init; }
    [JsonPropertyName("layers")] public IReadOnlyList<int> Layers { get; init; } = [];
    [JsonPropertyName("loss")] public double Loss { get; init; }
    [JsonPropertyName("ratio_mean")] public double RatioMean { get; init; }
    [JsonPropertyName("ratio_std")] public double RatioStd { get; init; }
    [JsonPropertyName("log_ratio_std")] public double LogRatioStd { get; init; }
    [JsonPropertyName("clip_frac")] public double ClipFraction { get; init; }
    [JsonPropertyName("kl")] public double Kl { get; init; }
    [JsonPropertyName("grad_norm")] public double GradNorm { get; init; }
    [JsonPropertyName("lr")] public double LearningRate { get; init; }
    [JsonPropertyName("nonfinite")] public bool NonFinite { get; init; }
    [JsonPropertyName("bad_layers")] public double BadLayersPerDecomposition { get; init; }
    [JsonPropertyName("sampling_s")] public double SamplingSeconds { get; init; }
    [JsonPropertyName("judging_s")] public double JudgingSeconds { get; init; }
    [JsonPropertyName("update_s")] public double UpdateSeconds { get; init; }
    [JsonPropertyName("update_gflops")] public double UpdateGflops { get; init; }
    [JsonPropertyName("peak_rss_mb")] public double PeakRssMb { get; init; }

    /// <summary>log r of the first trained batch (the on-policy check: all exactly 0 on a step's first update).</summary>
    [JsonPropertyName("first_log_ratios")] public IReadOnlyList<double> FirstLogRatios { get; init; } = [];
}

/// <summary>One line of eval.jsonl: held-out metrics of the current policy (deterministic sampling).</summary>
[JsonNumberHandling(JsonNumberHandling.AllowNamedFloatingPointLiterals)]
public sealed record EvalLog
{
    [JsonPropertyName("step")] public int Step { get; init; }
    [JsonPropertyName("samples")] public int Samples { get; init; }
    [JsonPropertyName("best_match_l1")] public double? BestMatchL1 { get; init; }
    [JsonPropertyName("best_match_l1_by_layers")] public IReadOnlyDictionary<string, double?> BestMatchL1ByLayers { get; init; } = new Dictionary<string, double?>();
    [JsonPropertyName("bad_layers")] public double BadLayers { get; init; }
    [JsonPropertyName("recon_l1")] public double? ReconL1 { get; init; }
    [JsonPropertyName("evenness")] public double? Evenness { get; init; }
    [JsonPropertyName("layer0_ssim")] public double? Layer0Ssim { get; init; }
    [JsonPropertyName("layer0_inpaint_l1")] public double? Layer0InpaintL1 { get; init; }
    [JsonPropertyName("reward_mean")] public double? RewardMean { get; init; }
}
