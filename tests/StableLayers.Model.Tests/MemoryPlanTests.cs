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

    /// <summary>
    /// Measures one small config in this process (fixed mmap threshold so freed tensors leave the resident set; the peak
    /// reset through /proc/self/clear_refs between phases) and compares with the plan, as the plan-validate benchmark
    /// does in child processes for larger configs.
    /// </summary>
    [Fact]
    public void PredictionIsWithinTwentyPercentOfTheMeasuredPeak()
    {
        Assert.True(Mallopt(MmapThreshold, 65536) == 1, "mallopt failed");
        var request = new MemoryPlanRequest
        {
            Transformer = TransformerConfig.Tiny(layers: 2, heads: 4, headDim: 64, textDim: 3584, inChannels: 64, outChannels: 16),
            Width = 256,
            Height = 256,
            Layers = 2,
            GroupSize = 1,
            DType = PlanDType.FP32,
            LoraRank = 8,
            TextTokens = 32,
        };
        Measure(request with { Width = 32, Height = 32 }); // warm-up: JIT, libtorch and oneDNN one-time buffers
        // Other allocations in this process (GC, thread pools, finalisers) can only add to a peak, never remove from
        // it, so the least of three measurements is the one closest to what the model itself allocates.
        var runs = Enumerable.Range(0, 3).Select(_ => Measure(request)).ToList();
        double weights = runs.Min(m => m.Weights), sampling = runs.Min(m => m.Sampling), update = runs.Min(m => m.Update);
        var plan = MemoryPlan.Compute(request);
        var a = plan.Activations;
        double predictedWeights = plan.TransformerWeights + plan.LoraWeights;
        double predictedSampling = predictedWeights + a.SharedPerForward + plan.SamplingPerCandidate;
        double predictedUpdate = predictedWeights + plan.LoraTrainingState + a.SharedPerForward + plan.UpdatePerCandidate
            + (request.ImageTokens * request.Transformer.OutputTokenChannels * 4.0); // the loss target
        foreach (var (name, predicted, measured) in new[] { ("weights", predictedWeights, weights), ("sampling", predictedSampling, sampling), ("update", predictedUpdate, update) })
        {
            double error = (predicted - measured) / measured;
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name,-9} predicted {predicted / 1048576:F1} MiB measured {measured / 1048576.0:F1} MiB error {error:+0.0%;-0.0%}"));
            Assert.InRange(error, -0.20, 0.20);
        }
    }

    private static (double Weights, double Sampling, double Update) Measure(MemoryPlanRequest r)
    {
        GC.Collect();
        _ = MallocTrim(0);
        long baseline = Rss();
        var frames = FrameShape.Layered(r.Layers, r.Height / 16, r.Width / 16);
        var model = new QwenImageTransformer2DModel(r.Transformer);
        model.eval();
        using var lora = LoraAdapters.Inject(model, new LoraConfig { Rank = r.LoraRank, Alpha = r.LoraRank }, seed: 1);
        _ = MallocTrim(0);
        double weights = Rss() - baseline;
        var gen = new Generator(seed: 3);
        using var hidden = randn([1, r.ImageTokens, r.Transformer.InChannels], generator: gen);
        using var text = randn([1, r.TextTokens, r.Transformer.JointAttentionDim], generator: gen);
        using var mask = ones([1, r.TextTokens], dtype: ScalarType.Bool);
        using var sigma = full([1], 0.7f);
        using var target = randn([1, r.ImageTokens, r.Transformer.OutputTokenChannels], generator: gen);

        ResetPeak();
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            _ = model.forward(hidden, text, mask, sigma, frames).sum().item<float>();
        }

        double sampling = Peak() - baseline - (target.numel() * 4.0);
        using var optimizer = optim.AdamW(lora.TrainableParameters(), lr: 1e-4);
        _ = MallocTrim(0);
        ResetPeak();
        using (var scope = NewDisposeScope())
        {
            var loss = (model.forward(hidden, text, mask, sigma, frames).to(ScalarType.Float32) - target).pow(2).mean();
            loss.backward();
            optimizer.step();
        }

        double update = Peak() - baseline;
        model.Dispose();
        return (weights, sampling, update);
    }

    private const int MmapThreshold = -3; // M_MMAP_THRESHOLD

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int Mallopt(int param, int value);

    [DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);

    private static long Rss() => StatusKb("VmRSS:") * 1024;

    private static long Peak() => StatusKb("VmHWM:") * 1024;

    private static void ResetPeak() => File.WriteAllText("/proc/self/clear_refs", "5");

    private static long StatusKb(string key)
    {
        string line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(key, StringComparison.Ordinal));
        return long.Parse(line[key.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
    }
}
