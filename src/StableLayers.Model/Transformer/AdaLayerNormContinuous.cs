using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Model.Transformer;

/// <summary>
/// <c>norm_out</c>: LayerNorm without affine (eps 1e-6) modulated from the conditioning through SiLU and
/// <c>linear</c>. Note the chunk order is <b>scale, shift</b> here, unlike the blocks' shift-first order.
/// </summary>
public sealed class AdaLayerNormContinuous : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Linear linear;
    private readonly long dim;

    public AdaLayerNormContinuous(long dim) : base(nameof(AdaLayerNormContinuous))
    {
        this.dim = dim;
        linear = nn.Linear(dim, 2 * dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor conditioning)
    {
        using var scope = NewDisposeScope();
        var emb = linear.call(nn.functional.silu(conditioning)).to(x.dtype);
        var parts = emb.chunk(2, 1);
        var (scale, shift) = (parts[0], parts[1]);
        var normed = nn.functional.layer_norm(x, [dim], eps: 1e-6);
        return (normed * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)).MoveToOuterDisposeScope();
    }
}
