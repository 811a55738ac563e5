using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Model.Transformer;

/// <summary>
/// RMSNorm with a learnable weight and no bias (diffusers <c>RMSNorm</c>, used for <c>txt_norm</c> and the
/// query/key norms). The mean square is taken in float32 even for bf16 inputs, as diffusers does,
/// because bf16 squares of 3584 channels lose too much precision.
/// </summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double eps;

    public RmsNorm(long dim, double eps = 1e-6) : base(nameof(RmsNorm))
    {
        this.eps = eps;
        weight = new Parameter(ones(dim));
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = input.to(ScalarType.Float32);
        var normed = x * rsqrt(x.pow(2).mean([-1], keepdim: true) + eps);
        return (normed.to(weight.dtype) * weight).MoveToOuterDisposeScope();
    }
}
