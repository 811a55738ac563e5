using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Vae;

/// <summary>diffusers' QwenImageMidBlock with num_layers = 1: resnet, attention, resnet.</summary>
public sealed class VaeMidBlock : VaeModule
{
    private readonly nn.Module<Tensor, Tensor>[] _attentions;
    private readonly nn.Module<Tensor, Tensor>[] _resnets;

    public VaeMidBlock(int dim, double dropout)
        : base(nameof(VaeMidBlock))
    {
        _attentions = [new VaeAttentionBlock(dim)];
        _resnets = [new VaeResidualBlock(dim, dim, dropout), new VaeResidualBlock(dim, dim, dropout)];
        register_module("attentions", nn.ModuleList(_attentions));
        register_module("resnets", nn.ModuleList(_resnets));
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = _resnets[0].call(input);
        for (int i = 0; i < _attentions.Length; i++)
        {
            x = _resnets[i + 1].call(_attentions[i].call(x));
        }

        return x.MoveToOuterDisposeScope();
    }
}
