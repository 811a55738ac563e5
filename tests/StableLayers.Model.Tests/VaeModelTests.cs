using System.Text.Json;
using StableLayers.Model.Vae;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public class VaeModelTests
{
    [Fact]
    public void FullConfigHas126Point9MillionParametersWithDiffusersNames()
    {
        var shapes = VaeConfig.Full.ParameterShapes();
        Assert.Equal(126.9, VaeConfig.Full.ParameterCount() / 1e6, 1);
        var byName = shapes.ToDictionary(p => p.Name, p => p.Shape);
        Assert.Equal([96L, 4, 3, 3, 3], byName["encoder.conv_in.weight"]);
        Assert.Equal([32L, 384, 3, 3, 3], byName["encoder.conv_out.weight"]);
        Assert.Equal([384L, 1, 1, 1], byName["encoder.norm_out.gamma"]);
        Assert.Equal([384L, 1, 1], byName["encoder.mid_block.attentions.0.norm.gamma"]);
        Assert.Equal([1152L, 384, 1, 1], byName["encoder.mid_block.attentions.0.to_qkv.weight"]);
        Assert.Equal([96L, 96, 3, 3], byName["encoder.down_blocks.2.resample.1.weight"]);
        Assert.False(byName.ContainsKey("encoder.down_blocks.2.time_conv.weight")); // downsample2d
        Assert.Equal([192L, 192, 3, 1, 1], byName["encoder.down_blocks.5.time_conv.weight"]);
        Assert.Equal([384L, 384, 3, 1, 1], byName["encoder.down_blocks.8.time_conv.weight"]);
        Assert.Equal([192L, 96, 1, 1, 1], byName["encoder.down_blocks.3.conv_shortcut.weight"]);
        Assert.Equal([32L, 32, 1, 1, 1], byName["quant_conv.weight"]);
        Assert.Equal([16L, 16, 1, 1, 1], byName["post_quant_conv.weight"]);
        Assert.Equal([768L, 384, 3, 1, 1], byName["decoder.up_blocks.0.upsamplers.0.time_conv.weight"]);
        Assert.Equal([192L, 384, 3, 3], byName["decoder.up_blocks.0.upsamplers.0.resample.1.weight"]);
        Assert.Equal([384L, 192, 3, 3, 3], byName["decoder.up_blocks.1.resnets.0.conv1.weight"]);
        Assert.False(byName.ContainsKey("decoder.up_blocks.2.upsamplers.0.time_conv.weight")); // upsample2d
        Assert.DoesNotContain(byName.Keys, k => k.StartsWith("decoder.up_blocks.3.upsamplers", StringComparison.Ordinal));
        Assert.Equal([4L, 96, 3, 3, 3], byName["decoder.conv_out.weight"]);
        Assert.Equal(8, VaeConfig.Full.SpatialCompression);
        Assert.Equal(11, shapes.Select(p => p.Name).Where(n => n.StartsWith("encoder.down_blocks.", StringComparison.Ordinal))
            .Select(n => n.Split('.')[2]).Distinct().Count());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ModuleParametersMatchAnalyticShapesExactly(bool withAttentionAndThreeStages)
    {
        using var scope = NewDisposeScope();
        var config = withAttentionAndThreeStages
            ? VaeConfig.Tiny(dimMult: [1, 2, 2]) with { AttnScales = [1.0, 0.5], NumResBlocks = 2 }
            : VaeConfig.Tiny();
        using var vae = new AutoencoderKLQwenImage(config);
        var actual = vae.named_parameters().Select(p => $"{p.name}:{string.Join("x", p.parameter.shape)}").Order(StringComparer.Ordinal);
        var expected = config.ParameterShapes().Select(p => $"{p.Name}:{string.Join("x", p.Shape)}").Order(StringComparer.Ordinal);
        Assert.Equal(expected, actual);
        Assert.Empty(vae.named_buffers());
        Assert.Equal(config.ParameterShapes().Select(p => p.Name).Order(StringComparer.Ordinal), vae.state_dict().Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void ConfigSerialisesWithDiffusersKeysAndReadsAReleasedConfig()
    {
        var json = JsonSerializer.Serialize(VaeConfig.Full);
        Assert.Contains("\"temperal_downsample\":[false,true,true]", json, StringComparison.Ordinal);
        Assert.Contains("\"_class_name\":\"AutoencoderKLQwenImage\"", json, StringComparison.Ordinal);
        const string released = """
            {"_class_name": "AutoencoderKLQwenImage", "_diffusers_version": "0.36.0", "attn_scales": [], "base_dim": 96,
             "dim_mult": [1, 2, 4, 4], "dropout": 0.0, "input_channels": 4, "num_res_blocks": 2, "temperal_downsample": [false, true, true],
             "z_dim": 16, "latents_mean": [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921],
             "latents_std": [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.916]}
            """;
        var c = JsonSerializer.Deserialize<VaeConfig>(released)!;
        Assert.Equal(VaeConfig.Full.LatentsMean, c.LatentsMean);
        Assert.Equal(VaeConfig.Full.LatentsStd, c.LatentsStd);
        Assert.Equal(VaeConfig.Full.ParameterCount(), c.ParameterCount());
    }

    [Fact]
    public void EncodeAndDecodeHaveTheDocumentedShapes()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var config = VaeConfig.Tiny(dimMult: [1, 2, 2]);
        using var vae = new AutoencoderKLQwenImage(config);
        vae.eval();
        var x = rand(2, 4, 16, 24) * 2 - 1;
        using var noGrad = no_grad();
        var z = vae.EncodeMean(x);
        Assert.Equal([2L, config.ZDim, 4, 6], z.shape);
        var y = vae.Decode(z);
        Assert.Equal([2L, 4, 16, 24], y.shape);
        Assert.Throws<ArgumentException>(() => vae.EncodeMean(rand(1, 4, 10, 16)));
        Assert.Throws<ArgumentException>(() => vae.EncodeMean(rand(1, 3, 16, 16)));
    }

    [Fact]
    public void RunsInBf16AfterModuleConversionCloseToFp32()
    {
        using var scope = NewDisposeScope();
        manual_seed(9);
        using var vae = new AutoencoderKLQwenImage(VaeConfig.Tiny());
        vae.eval();
        using var noGrad = no_grad();
        var x = (rand(1, 4, 16, 16) * 2) - 1;
        var z32 = vae.EncodeMean(x);
        var y32 = vae.Decode(z32);
        vae.to(ScalarType.BFloat16);
        Assert.All(vae.state_dict().Values, t => Assert.Equal(ScalarType.BFloat16, t.dtype));
        var z16 = vae.EncodeMean(x.to(bfloat16));
        var y16 = vae.Decode(z16);
        // Computed in bf16, returned as float32: latents feed the float32 schedule and SDE maths.
        Assert.Equal(ScalarType.Float32, z16.dtype);
        Assert.Equal(ScalarType.Float32, y16.dtype);
        double rel = (z16 - z32).norm().item<float>() / z32.norm().item<float>();
        Assert.True(rel is > 0 and < 0.05, $"bf16 latent relative error {rel}");
        Assert.True((y16.to(float32) - y32).norm().item<float>() / y32.norm().item<float>() < 0.05);
    }

    [Fact]
    public void NormalizeAndDenormalizeUseLatentStatisticsPerChannel()
    {
        using var scope = NewDisposeScope();
        var config = VaeConfig.Tiny() with { LatentsMean = [1f, 2f, 3f, 4f], LatentsStd = [2f, 2f, 4f, 0.5f] };
        using var vae = new AutoencoderKLQwenImage(config);
        var z = randn([2, 4, 3, 5]);
        var n = vae.Normalize(z);
        Assert.True(n[.., 2].allclose((z[.., 2] - 3f) / 4f));
        Assert.True(vae.Denormalize(n).allclose(z, rtol: 1e-5, atol: 1e-6));
        Assert.Equal([2L, 4, 2, 3, 5], vae.Normalize(randn([2, 4, 2, 3, 5])).shape); // [B, z, T, h, w] also works
    }

    [Fact]
    public void RgbaInitIgnoresAlphaOnInputAndDecodesOpaque()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        using var vae = new AutoencoderKLQwenImage(VaeConfig.Tiny(), rgbaInit: true);
        vae.eval();
        using var noGrad = no_grad();
        var x = rand(1, 4, 8, 8) * 2 - 1;
        var x2 = x.clone();
        x2[.., 3] = x2[.., 3] * -1;
        Assert.True(vae.EncodeMean(x).allclose(vae.EncodeMean(x2)));
        var alpha = vae.Decode(randn(1, 4, 4, 4))[.., 3];
        Assert.True(alpha.allclose(ones_like(alpha)));
    }

    [Fact]
    public void FewAdamWStepsReduceReconstructionLossOnAFixedBatch()
    {
        using var scope = NewDisposeScope();
        manual_seed(7);
        using var vae = new AutoencoderKLQwenImage(VaeConfig.Tiny(), rgbaInit: true);
        vae.train();
        var x = (rand(2, 4, 16, 16) * 2) - 1;
        using var opt = optim.AdamW(vae.parameters(), lr: 2e-3);
        var losses = new List<float>();
        for (int step = 0; step < 25; step++)
        {
            using var stepScope = NewDisposeScope();
            opt.zero_grad();
            var loss = nn.functional.mse_loss(vae.call(x), x);
            loss.backward();
            opt.step();
            losses.Add(loss.item<float>());
        }

        Assert.True(losses[^1] < 0.7f * losses[0], $"loss {losses[0]} -> {losses[^1]}");
        Assert.All(vae.parameters().Where(p => p.grad is not null), p => Assert.False(p.grad!.isnan().any().item<bool>()));
    }
}
