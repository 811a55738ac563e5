using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Model.Transformer;

/// <summary>
/// One dual-stream block: both streams are LayerNorm'ed and modulated from the timestep embedding
/// (chunks shift1, scale1, gate1, shift2, scale2, gate2; x(1+scale)+shift), attend jointly, then run their
/// own tanh-GELU MLPs; every residual is gated.
/// </summary>
public sealed class QwenImageTransformerBlock : nn.Module
{
    private const double Eps = 1e-6;
    private readonly Sequential img_mod;
    private readonly Sequential txt_mod;
    private readonly JointAttention attn;
    private readonly FeedForward img_mlp;
    private readonly FeedForward txt_mlp;
    private readonly long dim;

    public QwenImageTransformerBlock(long dim, long heads, long headDim) : base(nameof(QwenImageTransformerBlock))
    {
        this.dim = dim;
        img_mod = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim));
        txt_mod = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim));
        attn = new JointAttention(dim, heads, headDim);
        img_mlp = new FeedForward(dim);
        txt_mlp = new FeedForward(dim);
        RegisterComponents();
    }

    /// <param name="img">[B, S_img, dim].</param>
    /// <param name="txt">[B, S_txt, dim].</param>
    /// <param name="imgTemb">image-stream conditioning [B, dim]; with zero_cond_t [2B, dim] = (t, t = 0).</param>
    /// <param name="txtTemb">text-stream conditioning [B, dim].</param>
    /// <param name="rope">rotation tables.</param>
    /// <param name="keyMask">joint key mask or null.</param>
    /// <param name="useFirstHalf">zero_cond_t only: [1, S_img, 1] bool, true for tokens modulated by the first half of imgTemb.</param>
    public (Tensor Img, Tensor Txt) Forward(Tensor img, Tensor txt, Tensor imgTemb, Tensor txtTemb, RopeTables rope, Tensor? keyMask, Tensor? useFirstHalf = null)
    {
        ArgumentNullException.ThrowIfNull(img);
        ArgumentNullException.ThrowIfNull(txt);
        ArgumentNullException.ThrowIfNull(imgTemb);
        ArgumentNullException.ThrowIfNull(txtTemb);
        using var scope = NewDisposeScope();
        // Broadcast over tokens: [B, 1, 6d]. With zero_cond_t the projection runs on the 2B rows and is then
        // chosen per token, which is far cheaper than projecting a per-token conditioning.
        var imgMod = img_mod.call(imgTemb).unsqueeze(1);
        if (useFirstHalf is not null)
        {
            long batch = img.shape[0];
            imgMod = where(useFirstHalf, imgMod.narrow(0, 0, batch), imgMod.narrow(0, batch, batch));
        }

        var txtMod = txt_mod.call(txtTemb).unsqueeze(1);

        var im = imgMod.chunk(6, -1);
        var tm = txtMod.chunk(6, -1);

        var (imgAttn, txtAttn) = attn.Forward(Modulate(img, im[0], im[1]), Modulate(txt, tm[0], tm[1]), rope, keyMask);
        img = img + im[2] * imgAttn;
        txt = txt + tm[2] * txtAttn;

        img = img + im[5] * img_mlp.call(Modulate(img, im[3], im[4]));
        txt = txt + tm[5] * txt_mlp.call(Modulate(txt, tm[3], tm[4]));
        return (img.MoveToOuterDisposeScope(), txt.MoveToOuterDisposeScope());
    }

    private Tensor Modulate(Tensor x, Tensor shift, Tensor scale) =>
        nn.functional.layer_norm(x, [dim], eps: Eps) * (1 + scale) + shift;
}
