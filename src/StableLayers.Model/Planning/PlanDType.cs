using static TorchSharp.torch;

namespace StableLayers.Model.Planning;

/// <summary>The dtype the transformer's weights and activations are held in (LoRA, latents and log-probs stay float32/64).</summary>
public enum PlanDType
{
    BF16,
    FP16,
    FP32,
}

public static class PlanDTypeExtensions
{
    public static int Bytes(this PlanDType dtype) => dtype == PlanDType.FP32 ? 4 : 2;

    public static ScalarType ToScalarType(this PlanDType dtype) => dtype switch
    {
        PlanDType.BF16 => ScalarType.BFloat16,
        PlanDType.FP16 => ScalarType.Float16,
        _ => ScalarType.Float32,
    };

    /// <summary>Parses bf16 / fp16 / fp32 (also bfloat16, float16, float32); null for anything else.</summary>
    public static PlanDType? Parse(string text) => text?.Trim().ToLowerInvariant() switch
    {
        "bf16" or "bfloat16" => PlanDType.BF16,
        "fp16" or "float16" or "half" => PlanDType.FP16,
        "fp32" or "float32" or "float" => PlanDType.FP32,
        _ => null,
    };

    public static string Name(this PlanDType dtype) => dtype.ToString().ToLowerInvariant();
}
