using System.Text.Json.Serialization;
using StableLayers.Core;

namespace StableLayers.Training.Grpo;

/// <summary>How the per-sample log importance ratio log r is formed (docs/RL.md "RatioNorm").</summary>
[JsonConverter(typeof(SettingEnumConverter<RatioMode>))]
public enum RatioMode
{
    /// <summary>Plain Flow-GRPO: log r = mean_d log p_theta - mean_d log p_old (drifts below 0, vanishes at large D).</summary>
    None,

    /// <summary>GRPO-Guard RatioNorm, mean form: log r = mean_d(eps_d dmu_d); zero mean, std ~ rms(dmu) / sqrt(D).</summary>
    GuardMean,

    /// <summary>Ours (default): log r = D^(-exponent) sum_d eps_d dmu_d; with exponent 0.5 its std is rms(dmu) whatever D.</summary>
    SumRescale,
}
