using StableLayers.Model.Vae;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

/// <summary>
/// Test-only re-statement of diffusers' video VAE in 5D ([B, C, T, H, W]), reading parameters from a state dict by
/// their diffusers names, for the first chunk of a clip (what diffusers runs for a single image): causal convs as
/// conv3d with zero frames in front, 2D ops per frame, time_conv skipped because the feature cache is still empty.
/// </summary>
internal static class Reference3d
{
    public static Tensor Encoder(Dictionary<string, Tensor> s, VaeConfig c, Tensor x)
    {
        int[] dims = [c.BaseDim, .. c.DimMult.Select(m => c.BaseDim * m)];
        x = Conv(s, "encoder.conv_in", x);
        int block = 0;
        double scale = 1.0;
        for (int i = 0; i < c.DimMult.Length; i++)
        {
            for (int r = 0; r < c.NumResBlocks; r++)
            {
                x = Residual(s, $"encoder.down_blocks.{block++}", x);
                if (c.AttnScales.Contains(scale))
                {
                    x = Attention(s, $"encoder.down_blocks.{block++}", x);
                }
            }

            if (i != c.DimMult.Length - 1)
            {
                x = PerFrame(x, f => nn.functional.conv2d(nn.functional.pad(f, [0, 1, 0, 1]),
                    s[$"encoder.down_blocks.{block}.resample.1.weight"], s[$"encoder.down_blocks.{block}.resample.1.bias"], strides: [2, 2]));
                block++;
                scale /= 2;
            }
        }

        x = Mid(s, "encoder.mid_block", x);
        x = nn.functional.silu(Rms(x, s["encoder.norm_out.gamma"]));
        return Conv(s, "encoder.conv_out", x);
    }

    public static Tensor Decoder(Dictionary<string, Tensor> s, VaeConfig c, Tensor x)
    {
        x = Conv(s, "decoder.conv_in", x);
        x = Mid(s, "decoder.mid_block", x);
        for (int i = 0; i < c.DimMult.Length; i++)
        {
            for (int r = 0; r <= c.NumResBlocks; r++)
            {
                x = Residual(s, $"decoder.up_blocks.{i}.resnets.{r}", x);
            }

            string up = $"decoder.up_blocks.{i}.upsamplers.0.resample.1";
            if (s.ContainsKey(up + ".weight"))
            {
                x = PerFrame(x, f => nn.functional.conv2d(
                    nn.functional.interpolate(f, scale_factor: [2.0, 2.0], mode: InterpolationMode.NearestExact),
                    s[up + ".weight"], s[up + ".bias"], padding: [1, 1]));
            }
        }

        x = nn.functional.silu(Rms(x, s["decoder.norm_out.gamma"]));
        return Conv(s, "decoder.conv_out", x);
    }

    private static Tensor Conv(Dictionary<string, Tensor> s, string name, Tensor x)
    {
        var w = s[name + ".weight"];
        return VaeCausalConvEquivalenceTests.CausalConv3dReference(x, w, s[name + ".bias"], (int)(w.shape[3] / 2));
    }

    private static Tensor Rms(Tensor x, Tensor gamma) =>
        nn.functional.normalize(x, dim: 1) * Math.Sqrt(x.shape[1]) * gamma;

    private static Tensor Residual(Dictionary<string, Tensor> s, string name, Tensor x)
    {
        var h = s.ContainsKey(name + ".conv_shortcut.weight") ? Conv(s, name + ".conv_shortcut", x) : x;
        var y = Conv(s, name + ".conv1", nn.functional.silu(Rms(x, s[name + ".norm1.gamma"])));
        y = Conv(s, name + ".conv2", nn.functional.silu(Rms(y, s[name + ".norm2.gamma"])));
        return y + h;
    }

    private static Tensor Mid(Dictionary<string, Tensor> s, string name, Tensor x)
    {
        x = Residual(s, name + ".resnets.0", x);
        x = Attention(s, name + ".attentions.0", x);
        return Residual(s, name + ".resnets.1", x);
    }

    /// <summary>Attention written with explicit softmax(q k^T / sqrt(c)) v, not SDPA, as a second opinion.</summary>
    private static Tensor Attention(Dictionary<string, Tensor> s, string name, Tensor x) => PerFrame(x, f =>
    {
        long c = f.shape[1], h = f.shape[2], w = f.shape[3];
        var n = Rms(f, s[name + ".norm.gamma"]);
        var qkv = nn.functional.conv2d(n, s[name + ".to_qkv.weight"], s[name + ".to_qkv.bias"]).flatten(2); // [N, 3c, hw]
        var q = qkv.narrow(1, 0, c).transpose(1, 2);
        var k = qkv.narrow(1, c, c);
        var v = qkv.narrow(1, 2 * c, c).transpose(1, 2);
        var attn = softmax(q.matmul(k) / Math.Sqrt(c), -1).matmul(v); // [N, hw, c]
        var o = attn.transpose(1, 2).reshape(-1, c, h, w);
        return nn.functional.conv2d(o, s[name + ".proj.weight"], s[name + ".proj.bias"]) + f;
    });

    private static Tensor PerFrame(Tensor x, Func<Tensor, Tensor> f)
    {
        long b = x.shape[0], t = x.shape[2];
        var frames = f(x.permute(0, 2, 1, 3, 4).reshape(b * t, x.shape[1], x.shape[3], x.shape[4]));
        return frames.reshape(b, t, frames.shape[1], frames.shape[2], frames.shape[3]).permute(0, 2, 1, 3, 4);
    }
}
