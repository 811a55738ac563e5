using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Vae;

/// <summary>
/// diffusers' QwenImageAttentionBlock: single-head self-attention over the pixels of each frame, with 1x1 conv
/// projections. q, k and v are the first, second and third thirds of to_qkv's output channels.
/// </summary>
public sealed class VaeAttentionBlock : VaeModule
{
    private readonly VaeRmsNorm _norm;
    private readonly nn.Module<Tensor, Tensor> _toQkv;
    private readonly nn.Module<Tensor, Tensor> _proj;

    public VaeAttentionBlock(int dim)
        : base(nameof(VaeAttentionBlock))
    {
        _norm = new VaeRmsNorm(dim, images: true);
        _toQkv = nn.Conv2d(dim, dim * 3, 1);
        _proj = nn.Conv2d(dim, dim, 1);
        register_module("norm", _norm);
        register_module("to_qkv", _toQkv);
        register_module("proj", _proj);
    }

    /// <summary>Input [B, C, H, W].</summary>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        long b = input.shape[0], c = input.shape[1], h = input.shape[2], w = input.shape[3];
        var qkv = _toQkv.call(_norm.call(input)).reshape(b, 1, c * 3, h * w).permute(0, 1, 3, 2).contiguous();
        var parts = qkv.chunk(3, dim: -1);
        var attended = nn.functional.scaled_dot_product_attention(parts[0], parts[1], parts[2]);
        var x = attended.squeeze(1).permute(0, 2, 1).reshape(b, c, h, w);
        return (_proj.call(x) + input).MoveToOuterDisposeScope();
    }
}
