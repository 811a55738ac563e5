using StableLayers.Model.Planning;
using StableLayers.Model.Text;
using Xunit;

namespace StableLayers.Model.Tests;

/// <summary>The memory planner's text encoder: weights from the config, placement, and the encoding phase.</summary>
public sealed class TextEncoderPlanTests
{
    private static MemoryPlan Plan(TextEncoderPlacement placement, int textTokens = 256, PlanDType dtype = PlanDType.BF16) => MemoryPlan.Compute(new MemoryPlanRequest
    {
        QwenTextEncoder = Qwen25VlTextConfig.Qwen25Vl7B,
        TextEncoderPlacement = placement,
        TextEncoderName = "Qwen2.5-VL",
        TextTokens = textTokens,
        DType = dtype,
    });

    [Fact]
    public void Encoder_parameters_are_the_published_language_model_size()
    {
        // Qwen25VlTextEncoderTests checks ParameterCount() against the module's parameters; the plan must use it.
        var plan = Plan(TextEncoderPlacement.Resident);
        Assert.Equal(Qwen25VlTextConfig.Qwen25Vl7B.ParameterCount(), plan.TextEncoderParameters);
        // Qwen2.5-VL-7B's language model is Qwen2.5-7B's shape: published 7.61B parameters with the (untied) lm_head,
        // 6.53B without embeddings; the loader keeps everything but the lm_head.
        var c = Qwen25VlTextConfig.Qwen25Vl7B;
        long embeddings = (long)c.VocabSize * c.HiddenSize;
        Assert.Equal(7_615_616_512, plan.TextEncoderParameters + embeddings);
        Assert.Equal(6.53, Math.Round((plan.TextEncoderParameters - embeddings) / 1e9, 2));
        Assert.Equal(plan.TextEncoderParameters * 2.0, plan.TextEncoderWeights);
        Assert.Equal(plan.TextEncoderParameters * 4.0, Plan(TextEncoderPlacement.Resident, dtype: PlanDType.FP32).TextEncoderWeights);
    }

    [Fact]
    public void Placement_decides_what_stays_resident_and_whether_an_encoding_peak_exists()
    {
        var precomputed = Plan(TextEncoderPlacement.Precomputed);
        var resident = Plan(TextEncoderPlacement.Resident);
        var offloaded = Plan(TextEncoderPlacement.Offloaded);

        Assert.Equal(precomputed.TextEncoderParameters * 2.0, resident.StepFixed - precomputed.StepFixed);
        Assert.Equal(precomputed.StepFixed, offloaded.StepFixed);
        Assert.Equal(0, precomputed.EncodingPeak);
        Assert.Equal(offloaded.TransformerWeights + offloaded.VaeWeights + offloaded.TextEncoderLoadedWeights + offloaded.EncodingActivations, offloaded.EncodingPeak);
        Assert.Contains(offloaded.Parts(), p => p.Name == "text encoding (once)");
        Assert.DoesNotContain(precomputed.Parts(), p => p.Name == "text encoding (once)");

        // 20.4B transformer + 7.07B encoder in bf16 (~52 GiB while encoding) fit an 80 GB card, not a 48 GB one.
        var on48 = offloaded.Verdict("48 GB", (48 - MemoryPlan.CardReserveGiB) * MemoryPlan.GiB);
        Assert.False(on48.EncodingFits);
        Assert.False(on48.Fits);
        Assert.True(precomputed.Verdict("48 GB", (48 - MemoryPlan.CardReserveGiB) * MemoryPlan.GiB).EncodingFits);
        Assert.True(offloaded.Verdict("80 GB", (80 - MemoryPlan.CardReserveGiB) * MemoryPlan.GiB).EncodingFits);
    }

    [Fact]
    public void Encoding_activations_grow_with_the_prompt_and_its_quadratic_attention()
    {
        var c = Qwen25VlTextConfig.Qwen25Vl7B;
        double a128 = Plan(TextEncoderPlacement.Offloaded, 128).EncodingActivations;
        double a990 = Plan(TextEncoderPlacement.Offloaded, 990).EncodingActivations;
        // At 162 tokens: the SwiGLU MLP (4 L x intermediate) and the kept residual stream ((28 + 4) L x hidden) in bf16,
        // plus small terms (masks, RoPE, the float32 output copy: under 10%).
        double l = 128 + QwenPromptEncoder.DropTokens;
        double main = (4 * l * c.IntermediateSize * 2) + (32 * l * c.HiddenSize * 2);
        Assert.InRange(a128, main, main * 1.1);
        // At 1024 tokens the attention term, with every head's L x L scores and softmax in bf16, overtakes the MLP.
        double l2 = 990 + QwenPromptEncoder.DropTokens;
        Assert.True(a990 > (2 * c.NumAttentionHeads * l2 * l2 * 2) + (7 * l2 * c.HiddenSize * 2));
        Assert.Throws<ArgumentException>(() => Plan(TextEncoderPlacement.Offloaded, QwenPromptEncoder.MaxSequenceLength + 1));
    }
}
