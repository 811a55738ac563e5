using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Model.Transformer;

/// <summary>
/// diffusers <c>FeedForward(activation_fn="gelu-approximate")</c>: <c>net.0.proj</c> (d -> 4d) with tanh GELU,
/// <c>net.1</c> dropout (kept so indices match the checkpoint), <c>net.2</c> (4d -> d).
/// </summary>
public sealed class FeedForward : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<nn.Module<Tensor, Tensor>> net;

    public FeedForward(long dim) : base(nameof(FeedForward))
    {
        net = nn.ModuleList<nn.Module<Tensor, Tensor>>(new GeluProjection(dim, 4 * dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim));
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        var x = input;
        foreach (var layer in net)
        {
            x = layer.call(x);
        }

        return x;
    }
}

/// <summary>diffusers <c>GELU</c> block: a Linear named <c>proj</c> followed by tanh-approximate GELU.</summary>
public sealed class GeluProjection : nn.Module<Tensor, Tensor>
{
    private readonly Linear proj;

    public GeluProjection(long input, long output) : base(nameof(GeluProjection))
    {
        proj = nn.Linear(input, output);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input) => nn.functional.gelu(proj.call(input), GELU.Approximate.tanh);
}
