using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Vae;

/// <summary>diffusers' QwenImageUpBlock: num_res_blocks + 1 residual blocks, then an optional upsampler (upsamplers.0).</summary>
public sealed class VaeUpBlock : VaeModule
{
    private readonly nn.Module<Tensor, Tensor>[] _resnets;
    private readonly VaeResample? _upsampler;

    public VaeUpBlock(int inDim, int outDim, int numResBlocks, double dropout, bool? temporalUpsample)
        : base(nameof(VaeUpBlock))
    {
        var resnets = new List<nn.Module<Tensor, Tensor>>();
        for (int r = 0; r <= numResBlocks; r++)
        {
            resnets.Add(new VaeResidualBlock(r == 0 ? inDim : outDim, outDim, dropout));
        }

        _resnets = [.. resnets];
        register_module("resnets", nn.ModuleList(_resnets));
        if (temporalUpsample is { } temporal)
        {
            _upsampler = new VaeResample(outDim, up: true, temporal: temporal);
            register_module("upsamplers", nn.ModuleList<nn.Module<Tensor, Tensor>>(_upsampler));
        }
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = input;
        foreach (var r in _resnets)
        {
            x = r.call(x);
        }

        if (_upsampler is not null)
        {
            x = _upsampler.call(x);
        }

        return x.MoveToOuterDisposeScope();
    }
}
