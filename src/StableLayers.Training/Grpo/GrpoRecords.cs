using System.Text.Json.Serialization;
using StableLayers.Distributed;
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

    /// <summary>Data-parallel ranks that wrote it (checkpoints from before data parallelism were one process).</summary>
    [JsonPropertyName("world_size")] public int WorldSize { get; init; } = 1;
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

    /// <summary>Per endpoint of a judge pool, this step's requests, failures, latency and outages (absent with one endpoint).</summary>
    [JsonPropertyName("judge_endpoints"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public IReadOnlyList<EndpointUsage>? JudgeEndpoints { get; init; }
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

/// <summary>How <see cref="GrpoStep.Advantages"/> normalises rewards (docs/RL.md "GRPO loss").</summary>
/// <param name="GlobalStd">Divide by the population std over all rewards of the step (the kept groups' successful candidates) instead of each group's own.</param>
/// <param name="Clamp">Advantages are clamped to [-Clamp, Clamp].</param>
/// <param name="Epsilon">Added to the std in the denominator.</param>
public sealed record AdvantageOptions(bool GlobalStd = false, double Clamp = 5.0, double Epsilon = 1e-4);

/// <summary>Advantages of one step's groups and the counts worth logging.</summary>
/// <param name="Advantages">Same shape as the rewards: one value per candidate, null for a failed candidate and for every candidate of a dropped group.</param>
/// <param name="UsedGroups">Groups with at least two successful candidates (the ones that get advantages).</param>
/// <param name="DroppedGroups">Groups left with fewer than two successful candidates.</param>
/// <param name="FailedCandidates">Candidates whose reward is null.</param>
/// <param name="ZeroStdGroups">Used groups whose rewards are all equal (their advantages are exactly 0).</param>
/// <param name="MeanGroupStd">Mean over used groups of the group's population reward std (0 when none).</param>
public sealed record AdvantageResult(
    IReadOnlyList<IReadOnlyList<double?>> Advantages,
    int UsedGroups,
    int DroppedGroups,
    int FailedCandidates,
    int ZeroStdGroups,
    double MeanGroupStd)
{
    /// <summary>zero_std_ratio: the share of used groups with all rewards equal (0 when no group was used).</summary>
    public double ZeroStdRatio => UsedGroups == 0 ? 0.0 : (double)ZeroStdGroups / UsedGroups;
}

/// <summary>The update's statistics for one optimizer step (ratio statistics are means over trained batches).</summary>
public sealed record UpdateStats(
    double Loss,
    double RatioMean,
    double RatioStd,
    double LogRatioStd,
    double ClipFraction,
    double Kl,
    double GradNorm,
    int TrainedBatches,
    int TrainedSamples,
    bool NonFinite,
    IReadOnlyList<double> FirstLogRatios)
{
    /// <summary>A step whose update was skipped because something was not finite.</summary>
    public static UpdateStats Skipped { get; } = new(double.NaN, double.NaN, double.NaN, double.NaN, double.NaN, 0, double.NaN, 0, 0, true, []);
}

/// <summary>How the loss is formed and the gradient clipped (from <see cref="GrpoConfig.GrpoSection"/> and <see cref="GrpoConfig.OptimSection"/>).</summary>
public sealed record UpdateSettings(RatioMode Mode, double RescaleExponent, double ClipRange, double KlBeta, bool StepWeight, double GradClip)
{
    public static UpdateSettings Of(GrpoConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var g = config.Grpo;
        return new(g.RatioMode, g.RescaleExponent, g.ClipRange, g.KlBeta, g.StepWeight, config.Optim.GradClip);
    }
}

/// <summary>
/// How a step's groups are spread over the data-parallel ranks: the groups on all ranks (in image order), this rank's
/// groups' positions among them, and the stored timesteps each position trains (0 for a flat or dropped group).
/// </summary>
public sealed record StepShards(ICommunicator Communicator, int GroupCount, IReadOnlyList<int> Positions, IReadOnlyList<int> TrainedTerms)
{
    /// <summary>One process: every group is local.</summary>
    public static StepShards Local(IReadOnlyList<GroupRollout> groups, IReadOnlyList<IReadOnlyList<double?>> advantages)
    {
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentNullException.ThrowIfNull(advantages);
        return new(SingleProcess.Instance, groups.Count, [.. Enumerable.Range(0, groups.Count)],
            [.. Enumerable.Range(0, groups.Count).Select(g => GrpoStep.TrainedTerms(advantages[g], groups[g].Transitions.Count))]);
    }
}

/// <summary>
/// One mini-batch as seen from this rank: the stored timesteps it trains on all ranks (the loss's <c>terms</c>) and the
/// positions of this rank's groups in it (for ordering the ranks' logged values as one process would).
/// </summary>
public sealed record MinibatchShard(ICommunicator Communicator, int Terms, IReadOnlyList<int> Positions);
