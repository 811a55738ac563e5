using System.Globalization;
using System.Runtime.InteropServices;
using StableLayers.Model.Lora;
using StableLayers.Model.Planning;
using StableLayers.Model.Transformer;
using StableLayers.Model.Vae;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public class MemoryPlanTests(ITestOutputHelper output)
{
    [Fact]
    public void ParameterCountsEqualModulesBuiltOnTheMetaDevice()
    {
        // The released architecture, built without storage: every Parameter the port creates is counted.
        long transformer, vae;
        var previous = get_default_device();
        set_default_device(META);
        try
        {
            using (var model = new QwenImageTransformer2DModel(TransformerConfig.Full))
            {
                Assert.Equal(DeviceType.META, model.parameters().First().device_type);
                transformer = model.parameters().Sum(p => p.numel());
            }

            using (var autoencoder = new AutoencoderKLQwenImage(VaeConfig.Full))
            {
                vae = autoencoder.parameters().Sum(p => p.numel());
            }
        }
        finally
        {
            set_default_device(previous);
        }

        var plan = MemoryPlan.Compute(new MemoryPlanRequest());
        output.WriteLine($"transformer {transformer:N0}, VAE {vae:N0}, LoRA r16 {plan.LoraParameters:N0}");
        Assert.Equal(transformer, plan.TransformerParameters);
        Assert.Equal(vae, plan.VaeParameters);
        Assert.Equal(20.43, transformer / 1e9, 2);
        Assert.Equal(126.9, vae / 1e6, 1);
        Assert.Equal(transformer * 2.0, plan.TransformerWeights);
    }

    [Fact]
    public void TokenCountsFollowThePackingLayout()
    {
        var request = new MemoryPlanRequest { Width = 640, Height = 960, Layers = 4 };
        // Output frames 0..N plus the condition frame, each (H / 16) x (W / 16) patch tokens.
        Assert.Equal(FrameShape.Layered(4, 960 / 16, 640 / 16).Sum(f => (long)f.TokenCount), request.ImageTokens);
        Assert.Equal(6 * 40 * 60, request.ImageTokens);
    }

    [Fact]
    public void CheckpointingTradesSavedBlocksForBlockInputs()
    {
        var plain = MemoryPlan.Compute(new MemoryPlanRequest());
        var ckpt = MemoryPlan.Compute(new MemoryPlanRequest { Checkpointing = true });
        var deeper = MemoryPlan.Compute(new MemoryPlanRequest { Transformer = TransformerConfig.Full with { NumLayers = 61 } });
        // Without checkpointing each block adds its saved tensors (per token: 64 d bytes in bf16 at r16, plus small terms).
        double perBlock = deeper.UpdatePerCandidate - plain.UpdatePerCandidate;
        double tokens = plain.Request.ImageTokens + plain.Request.TextTokens;
        Assert.InRange(perBlock / (tokens * 3072), 64, 65);
        // The model's scope keeps every block's outputs (image and text stream) until the forward returns: d bf16 values per token.
        Assert.Equal(2.0 * 3072 * tokens, deeper.SamplingPerCandidate - plain.SamplingPerCandidate, 1.0);
        // Checkpointed, each extra block adds only its kept inputs.
        var ckptDeeper = MemoryPlan.Compute(new MemoryPlanRequest { Checkpointing = true, Transformer = TransformerConfig.Full with { NumLayers = 61 } });
        Assert.Equal(2.0 * 3072 * tokens, ckptDeeper.UpdatePerCandidate - ckpt.UpdatePerCandidate, 1.0);
        Assert.True(ckpt.UpdatePerCandidate < plain.UpdatePerCandidate / 10, $"{ckpt.UpdatePerCandidate} vs {plain.UpdatePerCandidate}");
        Assert.True(ckpt.UpdatePerCandidate >= ckpt.SamplingPerCandidate);
        Assert.Equal(plain.SamplingPerCandidate, ckpt.SamplingPerCandidate);
    }

    [Fact]
    public void LargestMicroBatchIsTheMostCandidatesThatFit()
    {
        Assert.Equal(3, MemoryPlan.LargestMicroBatch(usableBytes: 100, fixedBytes: 40, perCandidate: 20, groupSize: 8));
        Assert.Equal(2, MemoryPlan.LargestMicroBatch(100, 40, 29.9, 8));
        Assert.Equal(8, MemoryPlan.LargestMicroBatch(1000, 40, 20, 8));
        Assert.Equal(0, MemoryPlan.LargestMicroBatch(100, 90, 20, 8));
        var plan = MemoryPlan.Compute(new MemoryPlanRequest { Checkpointing = true });
        var verdict = plan.Verdict("test", plan.UpdatePeak(3) + 1);
        Assert.Equal(3, verdict.UpdateMicroBatch);
        Assert.True(plan.UpdatePeak(verdict.UpdateMicroBatch) <= verdict.UsableBytes);
    }
}
