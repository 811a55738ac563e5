using StableLayers.Data.Synthesis;
using StableLayers.Model;
using StableLayers.Model.Lora;
using StableLayers.Model.Schedulers;
using StableLayers.Model.Text;
using StableLayers.Model.Transformer;
using StableLayers.Model.Vae;
using StableLayers.Training.Grpo;
using TorchSharp;
using TorchSharp.Modules;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace StableLayers.Training.Tests;

/// <summary>
/// A GRPO update with activation checkpointing ([grpo] gradient_checkpointing) must train the LoRA exactly as the plain
/// update does. Tolerance, per tensor: max |x_checkpointed - x_plain| &lt;= 1e-5 x max |x_plain|.
/// </summary>
public class GrpoCheckpointingTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-5;

    [Fact]
    public void OneUpdateWithCheckpointingGivesTheSameLoraAndGradients()
    {
        using var scope = NewDisposeScope();
        var config = new LayeredModelConfig
        {
            Name = "test",
            Resolution = 16,
            Transformer = TransformerConfig.Tiny(layers: 2, heads: 2, headDim: 16, textDim: 16, inChannels: 16, outChannels: 4) with { ZeroCondT = true },
            Vae = VaeConfig.Tiny(baseDim: 8, zDim: 4, dimMult: [1, 2]),
            TextEncoder = new TinyTextEncoderConfig { HiddenSize = 16, NumHeads = 2, NumLayers = 1 },
        };
        var captions = new SynthGenerator(new SynthOptions { Size = 16 }).Generate(0, 20).Select(s => s.Caption);
        using var model = LayeredModel.Create(config, WordTokenizer.Build(captions), seed: 3);
        using var adapters = LoraAdapters.Inject(model.Transformer, new LoraConfig { Rank = 4, Alpha = 4 }, seed: 4);
        var generatorB = new Generator(seed: 5);
        using (no_grad())
        {
            // A nonzero B so that every A gets a gradient too.
            foreach (var l in adapters.Layers)
            {
                l.B.copy_(randn(l.B.shape, generator: generatorB) * 0.05);
            }
        }

        var initial = adapters.TrainableParameters().Select(p => p.detach().clone()).ToList();
        var image = TrainingImages.Synthetic(16, 2000, 2, 3).At(0);
        using var group = GrpoStep.SampleGroup(model, image, 2, new RolloutSettings(4, 4, 1.2, SdeKind.Sde, string.Empty),
            SdeWindow.Draw(4, new Random(6), 2), new Generator(seed: 7));
        IReadOnlyList<IReadOnlyList<double?>> advantages = [[1.0, -0.5, 0.25, -0.75]];
        // KL on: the LoRA-disabled reference runs between each forward and its backward.
        var settings = new UpdateSettings(RatioMode.SumRescale, 0.5, 0.2, KlBeta: 0.5, StepWeight: false, GradClip: 1.0);

        var to_q = (Linear)model.Transformer.named_modules().Single(m => m.name == "transformer_blocks.0.attn.to_q").module;
        int calls = 0;
        to_q.register_forward_hook((_, _, o) =>
        {
            calls++;
            return o;
        });

        (List<Tensor> Lora, List<Tensor> Grads, UpdateStats Stats, int Calls) Update(bool checkpoint)
        {
            using (no_grad())
            {
                foreach (var (p, v) in adapters.TrainableParameters().Zip(initial))
                {
                    p.copy_(v);
                }
            }

            model.Transformer.GradientCheckpointing = checkpoint;
            calls = 0;
            using var optimizer = optim.AdamW(adapters.TrainableParameters(), 1e-3, 0.9, 0.999, 1e-8, 1e-4);
            var stats = GrpoStep.UpdateMinibatch([group], advantages, adapters, optimizer, settings);
            var lora = adapters.TrainableParameters().Select(p => p.detach().clone()).ToList();
            // Factors that only feed the last block's unused text output have no gradient: zeros here.
            var grads = adapters.TrainableParameters().Select(p =>
            {
                using var g = p.grad;
                return g is null ? zeros_like(p) : g.detach().clone();
            }).ToList();
            return (lora, grads, stats, calls);
        }

        var plain = Update(checkpoint: false);
        var checkpointed = Update(checkpoint: true);
        model.Transformer.GradientCheckpointing = false;

        // One forward per window step plus the reference; the checkpointed update runs every block once more.
        output.WriteLine($"to_q calls: plain {plain.Calls}, checkpointed {checkpointed.Calls}; loss {plain.Stats.Loss} vs {checkpointed.Stats.Loss}");
        Assert.Equal(plain.Calls + group.Transitions.Count, checkpointed.Calls);
        Assert.Equal(group.Transitions.Count, plain.Stats.TrainedBatches);
        Assert.Equal(plain.Stats.TrainedBatches, checkpointed.Stats.TrainedBatches);
        Assert.True(Math.Abs(plain.Stats.GradNorm - checkpointed.Stats.GradNorm) <= Tolerance * plain.Stats.GradNorm);

        double worstGrad = 0, worstLora = 0, moved = 0;
        int withGradient = 0;
        for (int i = 0; i < initial.Count; i++)
        {
            if (plain.Grads[i].abs().max().item<float>() == 0)
            {
                Assert.Equal(0, checkpointed.Grads[i].abs().max().item<float>());
            }
            else
            {
                withGradient++;
                worstGrad = Math.Max(worstGrad, Relative(plain.Grads[i], checkpointed.Grads[i]));
            }

            worstLora = Math.Max(worstLora, Relative(plain.Lora[i], checkpointed.Lora[i]));
            moved = Math.Max(moved, (plain.Lora[i] - initial[i]).abs().max().item<float>());
        }

        Assert.True(withGradient >= initial.Count * 3 / 4, $"only {withGradient} of {initial.Count} LoRA factors have a gradient");
        output.WriteLine($"{initial.Count} LoRA factors ({withGradient} with a gradient): max relative difference of gradients {worstGrad:E2}, of the updated LoRA {worstLora:E2}; largest change by the update {moved:E2}");
        Assert.True(moved > 1e-4, "the update did not move the LoRA");
        Assert.True(worstGrad <= Tolerance, $"gradients differ by {worstGrad}");
        Assert.True(worstLora <= Tolerance, $"updated LoRA differs by {worstLora}");
    }

    private static double Relative(Tensor plain, Tensor checkpointed)
    {
        double scale = plain.abs().max().item<float>();
        Assert.True(scale > 0, "a zero tensor proves nothing");
        return (checkpointed - plain).abs().max().item<float>() / scale;
    }
}
