using System.Text.Json.Serialization;

namespace StableLayers.Metrics;

/// <summary>
/// Every metric of one sample, with the exact field names of metrics.json (other tools read them).
/// Null where a metric is undefined for the sample (no ground truth, no input, too few layers).
/// </summary>
public sealed record SampleMetrics
{
    [JsonPropertyName("id")]
    public required string Id { get; init; }

    [JsonPropertyName("layers_pred")]
    public int LayersPred { get; init; }

    [JsonPropertyName("layers_gt")]
    public int? LayersGt { get; init; }

    [JsonPropertyName("best_match_l1")]
    public double? BestMatchL1 { get; init; }

    [JsonPropertyName("best_match_l1_by_pred_index")]
    public IReadOnlyList<double?>? BestMatchL1ByPredIndex { get; init; }

    [JsonPropertyName("layerd_rgb_l1")]
    public IReadOnlyList<double>? LayerdRgbL1 { get; init; }

    [JsonPropertyName("layerd_alpha_iou")]
    public IReadOnlyList<double>? LayerdAlphaIou { get; init; }

    [JsonPropertyName("blank")]
    public int Blank { get; init; }

    [JsonPropertyName("glazed")]
    public int Glazed { get; init; }

    [JsonPropertyName("artifact")]
    public int Artifact { get; init; }

    /// <summary>1 when layer 0 is degenerate (less than 95% opaque), else 0.</summary>
    [JsonPropertyName("degenerate_bg")]
    public int DegenerateBg { get; init; }

    [JsonPropertyName("bad_layers")]
    public int BadLayers { get; init; }

    [JsonPropertyName("evenness")]
    public double? Evenness { get; init; }

    [JsonPropertyName("layer0_ssim")]
    public double? Layer0Ssim { get; init; }

    [JsonPropertyName("layer0_inpaint_l1")]
    public double? Layer0InpaintL1 { get; init; }

    [JsonPropertyName("recon_l1")]
    public double? ReconL1 { get; init; }

    /// <summary>The judge's reward for this decomposition judged on its own (<c>eval --judge</c>); null when not judged or the judgement failed.</summary>
    [JsonPropertyName("judge_reward")]
    public double? JudgeReward { get; init; }

    /// <summary>
    /// The judge's background-inpainting criterion in [0, 1] (calibrated when the judge calibrates, else phase 1): the
    /// layer-0 inpainting measure of the unlabeled protocol, where no ground-truth background exists.
    /// </summary>
    [JsonPropertyName("judge_background_inpainting")]
    public double? JudgeBackgroundInpainting { get; init; }

    /// <summary>The scalar metrics by their metrics.json name, for aggregation (arrays are expanded by index).</summary>
    public IEnumerable<(string Name, double? Value)> Scalars()
    {
        yield return ("best_match_l1", BestMatchL1);
        if (BestMatchL1ByPredIndex is not null)
        {
            for (int k = 0; k < BestMatchL1ByPredIndex.Count; k++)
            {
                yield return ($"best_match_l1_pred{k}", BestMatchL1ByPredIndex[k]);
            }
        }

        for (int e = 0; e < (LayerdRgbL1?.Count ?? 0); e++)
        {
            yield return ($"layerd_rgb_l1_e{e}", LayerdRgbL1![e]);
        }

        for (int e = 0; e < (LayerdAlphaIou?.Count ?? 0); e++)
        {
            yield return ($"layerd_alpha_iou_e{e}", LayerdAlphaIou![e]);
        }

        yield return ("blank", Blank);
        yield return ("glazed", Glazed);
        yield return ("artifact", Artifact);
        yield return ("degenerate_bg", DegenerateBg);
        yield return ("bad_layers", BadLayers);
        yield return ("evenness", Evenness);
        yield return ("layer0_ssim", Layer0Ssim);
        yield return ("layer0_inpaint_l1", Layer0InpaintL1);
        yield return ("recon_l1", ReconL1);
        yield return ("judge_reward", JudgeReward);
        yield return ("judge_background_inpainting", JudgeBackgroundInpainting);
    }
}
