using StableLayers.Model.Lora;
using StableLayers.Model.Transformer;
using TorchSharp;
using TorchSharp.Modules;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

/// <summary>
/// Activation checkpointing (<see cref="QwenImageTransformer2DModel.GradientCheckpointing"/>) must give the gradients
/// of the plain forward. Tolerance, per gradient tensor: max |g_checkpointed - g_plain| &lt;= 1e-5 x max |g_plain|
/// (relative to the tensor's largest entry, so it means the same for large and small gradients).
/// </summary>
public class GradientCheckpointingTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-5;

    /// <summary>A padded batch whose rows have different numbers of real text tokens (6 and 3 of 6).</summary>
    private static TransformerTestData PaddedBatch(long seed)
    {
        manual_seed(seed);
        var d = TransformerTestData.Create(batch: 2, layers: 2, side: 4, textLength: 6, realText: 6);
        var mask = arange(6).unsqueeze(0).lt(tensor(new long[] { 6, 3 }).unsqueeze(1));
        return d with { Mask = mask };
    }

    /// <summary>Counts forward calls of one Linear of the second block: 2 per update with checkpointing (forward + recompute).</summary>
    private static Func<int> CountCalls(QwenImageTransformer2DModel model, string name = "transformer_blocks.1.attn.to_q")
    {
        var linear = (Linear)model.named_modules().Single(m => m.name == name).module;
        int calls = 0;
        linear.register_forward_hook((_, _, o) =>
        {
            calls++;
            return o;
        });
        return () => calls;
    }

    /// <summary>
    /// One forward and backward of a fixed random projection of the output; returns a copy of every gradient by name
    /// (parameters, and "input.*" for the inputs that require grad) and zeroes the parameter gradients again.
    /// </summary>
    private static Dictionary<string, Tensor> Gradients(QwenImageTransformer2DModel model, TransformerTestData d, IReadOnlyList<(string Name, Tensor Param)> parameters,
        bool checkpoint, bool inputGrads, Action? beforeBackward = null)
    {
        model.GradientCheckpointing = checkpoint;
        var latents = d.Latents.detach().clone().requires_grad_(inputGrads);
        var text = d.Text.detach().clone().requires_grad_(inputGrads);
        var y = model.forward(latents, text, d.Mask, d.Timestep, d.Frames);
        var weights = randn(y.shape, generator: new Generator(seed: 77));
        beforeBackward?.Invoke();
        (y * weights).sum().backward();

        // Parameters that only feed the last block's text stream (unused by the output) get no gradient at all.
        var grads = new Dictionary<string, Tensor>();
        foreach (var (name, p) in parameters)
        {
            if (p.grad is { } g)
            {
                grads[name] = g.detach().clone();
                g.zero_();
            }
        }

        if (inputGrads)
        {
            grads["input.latents"] = latents.grad!.detach().clone();
            grads["input.text"] = text.grad!.detach().clone();
        }

        return grads;
    }

    /// <summary>Largest relative difference over all gradients (each against its own max |g_plain|); every plain gradient must be nonzero.</summary>
    private double MaxRelativeDifference(Dictionary<string, Tensor> plain, Dictionary<string, Tensor> checkpointed)
    {
        Assert.Equal(plain.Keys.Order(), checkpointed.Keys.Order());
        Assert.True(plain.Count > 10, "too few gradients to compare");
        double worst = 0;
        string worstName = string.Empty;
        int zero = 0;
        foreach (var (name, g) in plain)
        {
            double scale = g.abs().max().item<float>();
            double diff = (checkpointed[name] - g).abs().max().item<float>();
            if (scale == 0)
            {
                // Only the last block's text query feeds nothing but the discarded text output: exactly zero both ways.
                Assert.True(diff == 0, $"'{name}' has a zero plain gradient but a nonzero checkpointed one");
                zero++;
                continue;
            }

            diff /= scale;
            if (diff > worst)
            {
                worst = diff;
                worstName = name;
            }
        }

        output.WriteLine($"{plain.Count} gradients ({zero} exactly zero), max relative difference {worst:E2} ({worstName})");
        Assert.True(zero <= plain.Count / 10, $"{zero} of {plain.Count} gradients are zero: the comparison would prove little");
        return worst;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void FullParameterAndInputGradientsEqualThePlainBackward(bool zeroCondT)
    {
        using var scope = NewDisposeScope();
        manual_seed(21);
        using var model = new QwenImageTransformer2DModel(TransformerTestData.Config with { ZeroCondT = zeroCondT });
        model.train();
        var calls = CountCalls(model);
        var d = PaddedBatch(22);
        var parameters = model.named_parameters().Select(p => (p.name, (Tensor)p.parameter)).ToList();

        var plain = Gradients(model, d, parameters, checkpoint: false, inputGrads: true);
        Assert.Equal(1, calls());
        var checkpointed = Gradients(model, d, parameters, checkpoint: true, inputGrads: true);
        Assert.Equal(3, calls()); // the block ran again in the backward pass

        Assert.True(MaxRelativeDifference(plain, checkpointed) <= Tolerance);
    }

    [Fact]
    public void LoraGradientsWithDropoutEqualThePlainBackward()
    {
        using var scope = NewDisposeScope();
        manual_seed(31);
        using var model = new QwenImageTransformer2DModel(TransformerTestData.Config with { ZeroCondT = true });
        using var adapters = LoraAdapters.Inject(model, new LoraConfig { Rank = 4, Alpha = 8, Dropout = 0.25 }, seed: 32);
        RandomizeB(adapters);
        model.train(); // LoRA dropout draws masks: the recompute must draw the same ones
        var calls = CountCalls(model);
        var d = PaddedBatch(33);
        var parameters = adapters.Layers.SelectMany(l => new[] { (l.ModuleName + ".A", (Tensor)l.A), (l.ModuleName + ".B", (Tensor)l.B) }).ToList();

        // The first block's inputs come from frozen layers and need no grad: its adapters still get gradients.
        manual_seed(34);
        var plain = Gradients(model, d, parameters, checkpoint: false, inputGrads: false);
        manual_seed(34);
        var checkpointed = Gradients(model, d, parameters, checkpoint: true, inputGrads: false);
        Assert.Equal(3, calls());
        Assert.True(MaxRelativeDifference(plain, checkpointed) <= Tolerance);
    }

    [Fact]
    public void RecomputeUsesTheAdapterStateOfTheForwardPass()
    {
        using var scope = NewDisposeScope();
        manual_seed(41);
        using var model = new QwenImageTransformer2DModel(TransformerTestData.Config);
        using var adapters = LoraAdapters.Inject(model, new LoraConfig { Rank = 4 }, seed: 42);
        RandomizeB(adapters);
        var d = PaddedBatch(43);
        var parameters = adapters.Layers.SelectMany(l => new[] { (l.ModuleName + ".A", (Tensor)l.A), (l.ModuleName + ".B", (Tensor)l.B) }).ToList();

        var plain = Gradients(model, d, parameters, checkpoint: false, inputGrads: false);
        // As GRPO's KL term does: the reference policy (adapters disabled) is evaluated between forward and backward,
        // and here the adapters are even still disabled when backward runs.
        var checkpointed = Gradients(model, d, parameters, checkpoint: true, inputGrads: false, beforeBackward: () => adapters.Enabled = false);
        Assert.False(adapters.Layers[0].Enabled);
        adapters.Enabled = true;
        Assert.True(MaxRelativeDifference(plain, checkpointed) <= Tolerance);
    }

    [Fact]
    public void NoGradForwardIsUnchangedAndNotCheckpointed()
    {
        using var scope = NewDisposeScope();
        manual_seed(51);
        using var model = new QwenImageTransformer2DModel(TransformerTestData.Config);
        var calls = CountCalls(model);
        var d = PaddedBatch(52);
        Tensor plain, checkpointed;
        using (no_grad())
        {
            plain = d.Run(model);
            model.EnableGradientCheckpointing();
            checkpointed = d.Run(model);
        }

        Assert.True(plain.allclose(checkpointed, rtol: 0, atol: 0));
        Assert.Equal(2, calls());

        // With grad on, the checkpointed forward's values are those of the plain forward as well.
        var withGrad = d.Run(model);
        Assert.True(withGrad.requires_grad);
        Assert.True(plain.allclose(withGrad, rtol: 0, atol: 0));
        model.DisableGradientCheckpointing();
        Assert.False(model.GradientCheckpointing);
    }

    [Fact]
    public void BlocksDrawNoRandomNumbersInTrainingMode()
    {
        // The recompute replays the generator only for LoRA dropout; the blocks themselves must not draw.
        using var scope = NewDisposeScope();
        manual_seed(61);
        using var model = new QwenImageTransformer2DModel(TransformerTestData.Config);
        model.train();
        var d = PaddedBatch(62);
        var before = random.get_rng_state();
        d.Run(model).sum().backward();
        Assert.True(before.eq(random.get_rng_state()).all().item<bool>(), "a training-mode forward drew from the generator");
    }

    [Fact]
    public void RepeatedCheckpointedUpdatesLeaveNoTensorsBehind()
    {
        using var outer = NewDisposeScope();
        manual_seed(71);
        using var model = new QwenImageTransformer2DModel(TransformerTestData.Config);
        using var adapters = LoraAdapters.Inject(model, new LoraConfig { Rank = 4 }, seed: 72);
        model.EnableGradientCheckpointing();
        var d = PaddedBatch(73);

        void Update()
        {
            using var scope = NewDisposeScope();
            d.Run(model).pow(2).mean().backward();
        }

        long Live()
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            return Tensor.TotalCount;
        }

        Update();
        // TorchSharp counts a handle for every undefined gradient it wraps and never uncounts it: one for the unused
        // text output of the last block, and one per parameter that only feeds it (those have no .grad).
        int undefinedPerUpdate = 1 + adapters.TrainableParameters().Count(p =>
        {
            using var g = p.grad;
            return g is null;
        });
        long live = Live();
        const int Updates = 3;
        for (int i = 0; i < Updates; i++)
        {
            Update();
        }

        long after = Live();
        output.WriteLine($"live tensor handles after the first update {live}, after {Updates} more {after} ({undefinedPerUpdate} undefined per update)");
        Assert.True(undefinedPerUpdate < 10, $"{undefinedPerUpdate} parameters without a gradient");
        Assert.Equal(live + (Updates * undefinedPerUpdate), after);
    }

    private static void RandomizeB(LoraAdapters adapters)
    {
        var g = new Generator(seed: 5);
        using var noGrad = no_grad();
        foreach (var l in adapters.Layers)
        {
            using var scope = NewDisposeScope();
            l.B.copy_(randn(l.B.shape, generator: g) * 0.2);
        }
    }
}
