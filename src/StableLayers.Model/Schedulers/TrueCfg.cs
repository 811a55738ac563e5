using static TorchSharp.torch;

namespace StableLayers.Model.Schedulers;

/// <summary>
/// "True" classifier-free guidance as in QwenImageLayeredPipeline: two transformer passes (prompt and
/// negative prompt) combined as v = v_neg + s (v_cond - v_neg).
/// </summary>
public static class TrueCfg
{
    /// <summary>Guards the normalisation against an all-zero combined token (diffusers would give NaN there).</summary>
    private const float NormFloor = 1e-12f;

    /// <summary>The pipeline runs the second pass only when the scale exceeds 1 and a negative prompt exists.</summary>
    public static bool IsActive(float scale, bool hasNegativePrompt) => scale > 1f && hasNegativePrompt;

    /// <summary>
    /// Combines the predictions in float32. With <paramref name="normalize"/> (the pipeline's cfg_normalize)
    /// each token's vector over the last dimension (64 packed channels) is rescaled to the length of the
    /// conditional prediction's: comb * (|v_cond| / |comb|), which keeps guidance from inflating the velocity.
    /// Pass only the output-frame tokens (the pipeline slices off the condition-image tokens first).
    /// </summary>
    public static Tensor Combine(Tensor vCond, Tensor vNeg, float scale, bool normalize)
    {
        ArgumentNullException.ThrowIfNull(vCond);
        ArgumentNullException.ThrowIfNull(vNeg);
        if (!vCond.shape.SequenceEqual(vNeg.shape))
        {
            throw new ArgumentException(
                $"conditional [{string.Join(",", vCond.shape)}] and negative [{string.Join(",", vNeg.shape)}] predictions differ in shape",
                nameof(vNeg));
        }

        using var scope = NewDisposeScope();
        var cond = vCond.to(ScalarType.Float32);
        var neg = vNeg.to(ScalarType.Float32);
        var combined = neg.add(cond.sub(neg), scale);
        if (!normalize)
        {
            return combined.MoveToOuterDisposeScope();
        }

        var condNorm = cond.norm(-1, keepdim: true);
        var combinedNorm = combined.norm(-1, keepdim: true).clamp_min(NormFloor);
        return combined.mul(condNorm.div(combinedNorm)).MoveToOuterDisposeScope();
    }
}
