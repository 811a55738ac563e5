using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Vae;

/// <summary>
/// diffusers' QwenImageResample for single frames. Down: pad right/bottom by one, 3x3 conv stride 2. Up: nearest 2x
/// (nearest-exact equals nearest at an integer factor), 3x3 conv that halves the channels. The "3d" modes also own a
/// temporal conv (time_conv), kept for checkpoint compatibility; diffusers does not apply it to the first frame of
/// a clip (its feature cache is empty then), so for single frames it is never executed here.
/// </summary>
public sealed class VaeResample : VaeModule
{
    private readonly bool _up;
    private readonly nn.Module<Tensor, Tensor> _conv;

    public VaeResample(int dim, bool up, bool temporal)
        : base(nameof(VaeResample))
    {
        _up = up;
        _conv = up ? nn.Conv2d(dim, dim / 2, 3, padding: 1) : nn.Conv2d(dim, dim, 3, stride: 2);

        // diffusers holds the conv as index 1 of an nn.Sequential (index 0 is the parameter-free upsample / pad).
        register_module("resample", nn.Sequential(("0", nn.Identity()), ("1", _conv)));
        if (temporal)
        {
            var timeConv = up
                ? new CausalConv3d(dim, dim * 2, (3, 1, 1), (1, 0, 0))
                : new CausalConv3d(dim, dim, (3, 1, 1), (1, 0, 0)); // real one has stride 2 and no padding; unused here
            register_module("time_conv", timeConv);
        }
    }

    public bool IsUpsample => _up;

    /// <summary>Input [B, C, H, W].</summary>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        Tensor x = _up
            ? input.repeat_interleave(2, dim: 2).repeat_interleave(2, dim: 3)
            : nn.functional.pad(input, [0, 1, 0, 1]);
        return _conv.call(x).MoveToOuterDisposeScope();
    }
}
