using StableLayers.Model.Vae;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

/// <summary>
/// Checks the single-frame 2D execution against an independent 3D computation: a real conv3d over the frame with
/// diffusers' causal padding (2*pad_t zero frames in front, spatial zero padding), as diffusers runs it.
/// </summary>
public class VaeCausalConvEquivalenceTests
{
    [Theory]
    [InlineData(3)]
    [InlineData(1)]
    public void CausalConvOnOneFrameEqualsConv3dWithZeroFramesInFront(int k)
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        using var conv = new CausalConv3d(5, 7, k);
        using (no_grad())
        {
            conv.Weight.normal_();
            conv.Bias.normal_();
        }

        var x = randn(2, 5, 9, 6);
        var ours = conv.call(x);
        var reference = CausalConv3dReference(x.unsqueeze(2), conv.Weight, conv.Bias, k / 2).squeeze(2);
        Assert.Equal(reference.shape, ours.shape);
        Assert.True(ours.allclose(reference, rtol: 1e-4, atol: 1e-4), $"max diff {(ours - reference).abs().max().item<float>()}");
    }

    [Fact]
    public void TinyEncoderAndDecoderEqualA3dReferencePath()
    {
        using var scope = NewDisposeScope();
        manual_seed(12);
        var config = VaeConfig.Tiny(dimMult: [1, 2, 2]) with { AttnScales = [0.5] };
        using var vae = new AutoencoderKLQwenImage(config);
        vae.eval();
        using var noGrad = no_grad();
        foreach (var p in vae.parameters())
        {
            p.add_(randn_like(p) * 0.05); // gammas away from 1, so a wrong norm shape would show
        }

        var state = vae.state_dict();
        var x = (rand(2, 4, 16, 12) * 2) - 1;
        var ours = vae.EncodeMean(x);
        var moments = Reference3d.Encoder(state, config, x.unsqueeze(2));
        moments = CausalConv3dReference(moments, state["quant_conv.weight"], state["quant_conv.bias"], 0);
        var reference = moments.narrow(1, 0, config.ZDim).squeeze(2);
        Assert.True(ours.allclose(reference, rtol: 1e-4, atol: 1e-4), $"encoder max diff {(ours - reference).abs().max().item<float>()}");

        var z = randn(2, config.ZDim, 4, 3);
        var decoded = vae.Decode(z);
        var zz = CausalConv3dReference(z.unsqueeze(2), state["post_quant_conv.weight"], state["post_quant_conv.bias"], 0);
        var refDecoded = Reference3d.Decoder(state, config, zz).squeeze(2);
        Assert.True(decoded.allclose(refDecoded, rtol: 1e-4, atol: 1e-4), $"decoder max diff {(decoded - refDecoded).abs().max().item<float>()}");
    }

    /// <summary>diffusers' causal conv: pad W and H symmetrically by p, time by 2p in front only, then conv3d.</summary>
    internal static Tensor CausalConv3dReference(Tensor x5d, Tensor weight, Tensor bias, int p)
    {
        int pt = (int)(weight.shape[2] / 2);
        var padded = nn.functional.pad(x5d, [p, p, p, p, 2 * pt, 0]);
        return nn.functional.conv3d(padded, weight, bias);
    }
}
