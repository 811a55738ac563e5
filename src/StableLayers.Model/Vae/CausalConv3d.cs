using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Model.Vae;

/// <summary>
/// diffusers' QwenImageCausalConv3d, keeping its 5D weight [out, in, kt, kh, kw] so checkpoints load unchanged, but
/// executed on single frames as a 2D convolution. Causal padding puts 2*pad_t zero frames in front of the clip; for
/// the first (only) frame every temporal tap except the last sees zeros, so the output equals conv2d with
/// weight[:, :, kt - 1]. This holds for kt = 3 / pad_t = 1 and for kt = 1; other kernels are rejected.
/// </summary>
public sealed class CausalConv3d : VaeModule
{
    private readonly long[] _padding2d;

    public CausalConv3d(int inChannels, int outChannels, (int T, int H, int W) kernel, (int T, int H, int W) padding)
        : base(nameof(CausalConv3d))
    {
        if (kernel.T != (2 * padding.T) + 1)
        {
            throw new ArgumentException($"single-frame execution needs kt = 2*pad_t + 1, got kt {kernel.T}, pad_t {padding.T}");
        }

        KernelT = kernel.T;
        _padding2d = [padding.H, padding.W];
        register_parameter("weight", new Parameter(empty([outChannels, inChannels, kernel.T, kernel.H, kernel.W])));
        register_parameter("bias", new Parameter(empty(outChannels)));
        ResetParameters();
    }

    /// <summary>A cubic kernel k with padding k/2 in every axis, as diffusers' CausalConv3d(in, out, k, padding=k//2).</summary>
    public CausalConv3d(int inChannels, int outChannels, int kernel)
        : this(inChannels, outChannels, (kernel, kernel, kernel), (kernel / 2, kernel / 2, kernel / 2))
    {
    }

    // Looked up by name on each use: Module.to(dtype/device) swaps in new Parameter objects (and tries to assign a
    // member named exactly like the parameter, so these are capitalised).
    public Parameter Weight => get_parameter("weight")!;

    public Parameter Bias => get_parameter("bias")!;

    public int KernelT { get; }

    /// <summary>Input [B, in, H, W] (one frame) -> [B, out, H, W].</summary>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var w2d = Weight.select(2, KernelT - 1);
        return nn.functional.conv2d(input, w2d, Bias, padding: _padding2d).MoveToOuterDisposeScope();
    }

    /// <summary>PyTorch's Conv3d default: kaiming-uniform(a=sqrt 5) weights, bias uniform in +-1/sqrt(fan_in).</summary>
    public void ResetParameters()
    {
        using var noGrad = no_grad();
        nn.init.kaiming_uniform_(Weight, a: Math.Sqrt(5));
        long fanIn = Weight.shape[1] * Weight.shape[2] * Weight.shape[3] * Weight.shape[4];
        double bound = 1.0 / Math.Sqrt(fanIn);
        nn.init.uniform_(Bias, -bound, bound);
    }
}
