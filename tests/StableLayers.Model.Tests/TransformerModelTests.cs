using System.Diagnostics;
using StableLayers.Model.Transformer;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public class TransformerModelTests(ITestOutputHelper output)
{
    [Fact]
    public void OutputHasOneVelocityPerImageToken()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        using var model = new QwenImageTransformer2DModel(TransformerTestData.Config);
        var data = TransformerTestData.Create();
        var y = data.Run(model);
        Assert.Equal([2L, 4 * 16, 16], y.shape);
        Assert.Equal(ScalarType.Float32, y.dtype);
        Assert.False(y.isnan().any().item<bool>());
    }

    [Fact]
    public void PaddedTextTokensDoNotAffectImageOutput()
    {
        using var scope = NewDisposeScope();
        manual_seed(2);
        using var model = new QwenImageTransformer2DModel(TransformerTestData.Config);
        model.eval();
        var data = TransformerTestData.Create(realText: 4);
        var y = data.Run(model);

        var changedPadding = data.Text.clone();
        changedPadding[.., 4..] = randn(2, 2, TransformerTestData.Config.JointAttentionDim) * 10;
        var yPadded = (data with { Text = changedPadding }).Run(model);
        Assert.True(y.allclose(yPadded, rtol: 1e-5, atol: 1e-6), "padding changed the image output");

        var changedReal = data.Text.clone();
        changedReal[.., 1] = randn(2, TransformerTestData.Config.JointAttentionDim);
        var yReal = (data with { Text = changedReal }).Run(model);
        Assert.False(y.allclose(yReal, rtol: 1e-5, atol: 1e-6), "a real text token should matter");
    }

    [Fact]
    public void SameSeedGivesSameModelAndOutput()
    {
        Tensor Once()
        {
            manual_seed(42);
            using var model = new QwenImageTransformer2DModel(TransformerTestData.Config);
            return TransformerTestData.Create().Run(model);
        }

        using var scope = NewDisposeScope();
        var a = Once();
        var b = Once();
        Assert.True(a.allclose(b, rtol: 0, atol: 0));
    }

    [Fact]
    public void LayerIndexIsUsedSoSwappingLayerFramesIsNotJustAPermutation()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        using var model = new QwenImageTransformer2DModel(TransformerTestData.Config);
        var data = TransformerTestData.Create(batch: 1, layers: 2);
        var y = data.Run(model);

        // Token blocks of frames 1 and 2 (16 tokens each, after frame 0).
        static Tensor SwapFrames12(Tensor t) => cat([t.narrow(1, 0, 16), t.narrow(1, 32, 16), t.narrow(1, 16, 16), t.narrow(1, 48, t.shape[1] - 48)], 1);

        // Swapping the content but keeping layer indices: attention alone is permutation-equivariant,
        // so any difference comes from the layer RoPE axis.
        var ySwapped = (data with { Latents = SwapFrames12(data.Latents) }).Run(model);
        Assert.False(SwapFrames12(ySwapped).allclose(y, rtol: 1e-4, atol: 1e-5), "layer index had no effect");

        // Swapping content together with the layer indices is a pure permutation of tokens.
        var frames = data.Frames.ToList();
        (frames[1], frames[2]) = (frames[2], frames[1]);
        var yBoth = (data with { Latents = SwapFrames12(data.Latents), Frames = frames }).Run(model);
        Assert.True(SwapFrames12(yBoth).allclose(y, rtol: 1e-4, atol: 1e-5), "moving frames with their layer indices should only permute outputs");
    }

    [Fact]
    public void AdditionalTimestepConditionAndTimestepChangeOutput()
    {
        using var scope = NewDisposeScope();
        manual_seed(6);
        using var model = new QwenImageTransformer2DModel(TransformerTestData.Config);
        var d = TransformerTestData.Create();
        var y0 = model.forward(d.Latents, d.Text, d.Mask, d.Timestep, d.Frames, zeros(2, dtype: ScalarType.Int64));
        var yNull = model.forward(d.Latents, d.Text, d.Mask, d.Timestep, d.Frames);
        var y1 = model.forward(d.Latents, d.Text, d.Mask, d.Timestep, d.Frames, ones(2, dtype: ScalarType.Int64));
        var yT = model.forward(d.Latents, d.Text, d.Mask, d.Timestep * 0.5, d.Frames);
        Assert.True(y0.allclose(yNull));
        Assert.False(y0.allclose(y1));
        Assert.False(y0.allclose(yT));
    }

    [Fact]
    public void ForwardBackwardAndAdamWStepsReduceLossOnFixedTarget()
    {
        using var outer = NewDisposeScope();
        manual_seed(7);
        using var model = new QwenImageTransformer2DModel(TransformerTestData.Config);
        var data = TransformerTestData.Create(batch: 1);
        var target = randn(1, 64, 16);
        using var optimizer = optim.AdamW(model.parameters(), lr: 1e-3);
        var losses = new List<float>();
        for (int step = 0; step < 6; step++)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var loss = nn.functional.mse_loss(data.Run(model), target);
            loss.backward();
            optimizer.step();
            losses.Add(loss.item<float>());
        }

        output.WriteLine("losses: " + string.Join(", ", losses.Select(l => l.ToString("F4", System.Globalization.CultureInfo.InvariantCulture))));
        Assert.True(losses[^1] < losses[0] * 0.9, $"loss did not fall: {string.Join(", ", losses)}");
        // The last block's text-stream outputs feed nothing (only image tokens are returned), as in diffusers.
        var without = model.named_parameters().Where(p => p.parameter.grad is null).Select(p => p.name).Order(StringComparer.Ordinal).ToList();
        string[] unused =
        [
            "transformer_blocks.1.attn.to_add_out.bias", "transformer_blocks.1.attn.to_add_out.weight",
            "transformer_blocks.1.txt_mlp.net.0.proj.bias", "transformer_blocks.1.txt_mlp.net.0.proj.weight",
            "transformer_blocks.1.txt_mlp.net.2.bias", "transformer_blocks.1.txt_mlp.net.2.weight",
        ];
        Assert.Equal(unused, without);
    }

    [Fact]
    public void Bfloat16ForwardIsCloseToFloat32()
    {
        using var scope = NewDisposeScope();
        manual_seed(8);
        using var model = new QwenImageTransformer2DModel(TransformerTestData.Config);
        var data = TransformerTestData.Create();
        var y32 = data.Run(model);

        model.to(ScalarType.BFloat16);
        Assert.True(model.parameters().All(p => p.dtype == ScalarType.BFloat16));
        var y16 = data.Run(model);
        Assert.Equal(ScalarType.BFloat16, y16.dtype);
        double err = (y16.to(ScalarType.Float32) - y32).abs().max().item<float>();
        double scale = y32.abs().max().item<float>();
        output.WriteLine($"bf16 vs fp32: max abs error {err:G3}, output max {scale:G3}");
        Assert.True(err < 0.05 * scale, $"bf16 error {err} too large against {scale}");
    }

    [Fact]
    public void ZeroCondTMatchesPlainModelAtTimeZeroAndDiffersOtherwise()
    {
        using var scope = NewDisposeScope();
        manual_seed(9);
        using var zeroCond = new QwenImageTransformer2DModel(TransformerTestData.Config with { ZeroCondT = true });
        using var plain = new QwenImageTransformer2DModel(TransformerTestData.Config);
        plain.load_state_dict(zeroCond.state_dict());
        var d = TransformerTestData.Create();

        // At t = 0 both halves of the zero_cond_t conditioning coincide with the plain one.
        var atZero = d with { Timestep = zeros(2) };
        Assert.True(atZero.Run(zeroCond).allclose(atZero.Run(plain), rtol: 1e-5, atol: 1e-6));
        Assert.False(d.Run(zeroCond).allclose(d.Run(plain), rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void MeasuresTinyForwardTime()
    {
        using var scope = NewDisposeScope();
        manual_seed(10);
        using var model = new QwenImageTransformer2DModel(TransformerTestData.Config);
        model.eval();
        var data = TransformerTestData.Create(batch: 1);
        using (no_grad())
        {
            data.Run(model); // warm-up
            // Median of several runs: the build machines are shared, so single timings jump by 10x.
            var times = new List<double>();
            for (int i = 0; i < 21; i++)
            {
                using var step = NewDisposeScope();
                var sw = Stopwatch.StartNew();
                data.Run(model);
                times.Add(sw.Elapsed.TotalMilliseconds);
            }

            times.Sort();
            output.WriteLine($"tiny forward (2 blocks, 2x16 heads, 64 image + 6 text tokens, batch 1): median {times[10]:F2} ms, min {times[0]:F2} ms over 21 runs, {get_num_threads()} threads");
        }
    }
}
