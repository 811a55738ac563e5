using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Model.Transformer;

/// <summary>
/// The block's <c>attn</c> (diffusers <c>Attention</c> driven by <c>QwenDoubleStreamAttnProcessor2_0</c>):
/// separate Q/K/V projections for the image stream (<c>to_*</c>) and the text stream (<c>add_*_proj</c>),
/// per-head RMSNorm on queries and keys, RoPE, then one attention over [text, image] tokens.
/// </summary>
public sealed class JointAttention : nn.Module
{
    private readonly Linear to_q, to_k, to_v;
    private readonly Linear add_q_proj, add_k_proj, add_v_proj;
    private readonly RmsNorm norm_q, norm_k, norm_added_q, norm_added_k;
    private readonly ModuleList<Linear> to_out;
    private readonly Linear to_add_out;
    private readonly long heads;

    public JointAttention(long dim, long heads, long headDim) : base(nameof(JointAttention))
    {
        this.heads = heads;
        long inner = heads * headDim;
        to_q = nn.Linear(dim, inner);
        to_k = nn.Linear(dim, inner);
        to_v = nn.Linear(dim, inner);
        add_q_proj = nn.Linear(dim, inner);
        add_k_proj = nn.Linear(dim, inner);
        add_v_proj = nn.Linear(dim, inner);
        norm_q = new RmsNorm(headDim);
        norm_k = new RmsNorm(headDim);
        norm_added_q = new RmsNorm(headDim);
        norm_added_k = new RmsNorm(headDim);
        // diffusers' to_out is [Linear, Dropout]; only index 0 has weights.
        to_out = nn.ModuleList(nn.Linear(inner, dim));
        to_add_out = nn.Linear(inner, dim);
        RegisterComponents();
    }

    /// <param name="img">[B, S_img, dim] modulated image stream.</param>
    /// <param name="txt">[B, S_txt, dim] modulated text stream.</param>
    /// <param name="rope">rotation tables for this layout.</param>
    /// <param name="keyMask">[B, 1, 1, S_txt + S_img] bool, true where a key may be attended; null for none.</param>
    public (Tensor Img, Tensor Txt) Forward(Tensor img, Tensor txt, RopeTables rope, Tensor? keyMask)
    {
        ArgumentNullException.ThrowIfNull(img);
        ArgumentNullException.ThrowIfNull(txt);
        ArgumentNullException.ThrowIfNull(rope);
        using var scope = NewDisposeScope();
        long sTxt = txt.shape[1];

        // [B, S, H, D] layout: norms act on D, RoPE tables index S.
        Tensor Heads(Linear proj, Tensor x) => proj.call(x).reshape(x.shape[0], x.shape[1], heads, -1);
        var iq = Layer3DRope.Apply(norm_q.call(Heads(to_q, img)), rope.ImageCos, rope.ImageSin);
        var ik = Layer3DRope.Apply(norm_k.call(Heads(to_k, img)), rope.ImageCos, rope.ImageSin);
        var iv = Heads(to_v, img);
        var tq = Layer3DRope.Apply(norm_added_q.call(Heads(add_q_proj, txt)), rope.TextCos, rope.TextSin);
        var tk = Layer3DRope.Apply(norm_added_k.call(Heads(add_k_proj, txt)), rope.TextCos, rope.TextSin);
        var tv = Heads(add_v_proj, txt);

        var q = cat([tq, iq], 1).transpose(1, 2);
        var k = cat([tk, ik], 1).transpose(1, 2);
        var v = cat([tv, iv], 1).transpose(1, 2);
        // Default scale 1/sqrt(head_dim), as diffusers (TorchSharp's SDPA has no scale argument anyway).
        var joint = nn.functional.scaled_dot_product_attention(q, k, v, keyMask).transpose(1, 2).flatten(2, 3).to(q.dtype);

        var txtOut = to_add_out.call(joint.narrow(1, 0, sTxt));
        var imgOut = to_out[0].call(joint.narrow(1, sTxt, joint.shape[1] - sTxt));
        return (imgOut.MoveToOuterDisposeScope(), txtOut.MoveToOuterDisposeScope());
    }
}
