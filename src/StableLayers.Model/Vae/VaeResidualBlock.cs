using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Vae;

/// <summary>diffusers' QwenImageResidualBlock: (RMS norm, SiLU, 3x3x3 conv) twice, plus a 1x1x1 shortcut when widths differ.</summary>
public sealed class VaeResidualBlock : VaeModule
{
    private readonly VaeRmsNorm _norm1;
    private readonly CausalConv3d _conv1;
    private readonly VaeRmsNorm _norm2;
    private readonly nn.Module<Tensor, Tensor> _dropout;
    private readonly CausalConv3d _conv2;
    private readonly CausalConv3d? _shortcut;

    public VaeResidualBlock(int inDim, int outDim, double dropout)
        : base(nameof(VaeResidualBlock))
    {
        _norm1 = new VaeRmsNorm(inDim, images: false);
        _conv1 = new CausalConv3d(inDim, outDim, 3);
        _norm2 = new VaeRmsNorm(outDim, images: false);
        _dropout = nn.Dropout(dropout);
        _conv2 = new CausalConv3d(outDim, outDim, 3);
        register_module("norm1", _norm1);
        register_module("conv1", _conv1);
        register_module("norm2", _norm2);
        register_module("dropout", _dropout);
        register_module("conv2", _conv2);
        if (inDim != outDim)
        {
            _shortcut = new CausalConv3d(inDim, outDim, 1);
            register_module("conv_shortcut", _shortcut);
        }
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var h = _shortcut is null ? input : _shortcut.call(input);
        var x = _conv1.call(nn.functional.silu(_norm1.call(input)));
        x = _conv2.call(_dropout.call(nn.functional.silu(_norm2.call(x))));
        return (x + h).MoveToOuterDisposeScope();
    }
}
