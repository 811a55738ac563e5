using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Model.Vae;

/// <summary>
/// diffusers' QwenImageRMS_norm: L2-normalise over channels, times sqrt(dim) and a learned per-channel gamma
/// (no bias in this model). gamma keeps diffusers' shape, [dim,1,1,1] (video form) or [dim,1,1] (image form), and
/// is viewed as [dim,1,1] for our 2D execution. Half-precision inputs are normalised in fp32, as diffusers does.
/// </summary>
public sealed class VaeRmsNorm : VaeModule
{
    private readonly double _scale;

    public VaeRmsNorm(int dim, bool images)
        : base(nameof(VaeRmsNorm))
    {
        _scale = Math.Sqrt(dim);
        register_parameter("gamma", new Parameter(images ? ones(dim, 1, 1) : ones(dim, 1, 1, 1)));
    }

    // Looked up by name: Module.to(dtype/device) swaps in new Parameter objects.
    public Parameter Gamma => get_parameter("gamma")!;

    /// <summary>Input [B, dim, H, W].</summary>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        bool half = input.dtype is ScalarType.Float16 or ScalarType.BFloat16;
        var normalized = nn.functional.normalize(half ? input.to(ScalarType.Float32) : input, p: 2, dim: 1).to(input.dtype);
        var g = Gamma.view(Gamma.shape[0], 1, 1);
        return (normalized * _scale * g).MoveToOuterDisposeScope();
    }
}
