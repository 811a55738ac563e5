using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Vae;

/// <summary>
/// diffusers' QwenImageEncoder3d on single frames: conv_in, a flat list of residual (+attention) blocks with a
/// resample after each stage but the last, mid block, RMS norm, SiLU, conv_out to 2*z_dim (mean and log-variance).
/// </summary>
public sealed class VaeEncoder : VaeModule
{
    private readonly CausalConv3d _convIn;
    private readonly nn.Module<Tensor, Tensor>[] _downBlocks;
    private readonly VaeMidBlock _mid;
    private readonly VaeRmsNorm _normOut;
    private readonly CausalConv3d _convOut;

    public VaeEncoder(VaeConfig config)
        : base(nameof(VaeEncoder))
    {
        ArgumentNullException.ThrowIfNull(config);
        int[] dims = [config.BaseDim, .. config.DimMult.Select(m => config.BaseDim * m)];
        _convIn = new CausalConv3d(config.InputChannels, dims[0], 3);
        var blocks = new List<nn.Module<Tensor, Tensor>>();
        double scale = 1.0;
        for (int i = 0; i < config.DimMult.Length; i++)
        {
            int inDim = dims[i], outDim = dims[i + 1];
            for (int r = 0; r < config.NumResBlocks; r++)
            {
                blocks.Add(new VaeResidualBlock(inDim, outDim, config.Dropout));
                if (config.AttnScales.Contains(scale))
                {
                    blocks.Add(new VaeAttentionBlock(outDim));
                }

                inDim = outDim;
            }

            if (i != config.DimMult.Length - 1)
            {
                blocks.Add(new VaeResample(outDim, up: false, temporal: config.TemperalDownsample[i]));
                scale /= 2;
            }
        }

        _downBlocks = [.. blocks];
        _mid = new VaeMidBlock(dims[^1], config.Dropout);
        _normOut = new VaeRmsNorm(dims[^1], images: false);
        _convOut = new CausalConv3d(dims[^1], config.ZDim * 2, 3);
        register_module("conv_in", _convIn);
        register_module("down_blocks", nn.ModuleList(_downBlocks));
        register_module("mid_block", _mid);
        register_module("norm_out", _normOut);
        register_module("conv_out", _convOut);
    }

    /// <summary>The first conv; the RGBA initialisation zeroes its alpha input column.</summary>
    public CausalConv3d ConvIn => _convIn;

    /// <summary>[B, input_channels, H, W] -> [B, 2*z_dim, H/f, W/f].</summary>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = _convIn.call(input);
        foreach (var block in _downBlocks)
        {
            x = block.call(x);
        }

        x = _mid.call(x);
        return _convOut.call(nn.functional.silu(_normOut.call(x))).MoveToOuterDisposeScope();
    }
}
