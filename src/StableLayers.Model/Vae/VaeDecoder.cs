using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Vae;

/// <summary>
/// diffusers' QwenImageDecoder3d on single frames: conv_in from z_dim, mid block, up blocks from the widest stage
/// down (each upsampler halves the channels, so every block after the first starts at half its predecessor's
/// width), RMS norm, SiLU, conv_out to input_channels.
/// </summary>
public sealed class VaeDecoder : VaeModule
{
    private readonly CausalConv3d _convIn;
    private readonly VaeMidBlock _mid;
    private readonly VaeUpBlock[] _upBlocks;
    private readonly VaeRmsNorm _normOut;
    private readonly CausalConv3d _convOut;

    public VaeDecoder(VaeConfig config)
        : base(nameof(VaeDecoder))
    {
        ArgumentNullException.ThrowIfNull(config);
        int[] dims = [config.BaseDim * config.DimMult[^1], .. config.DimMult.Reverse().Select(m => config.BaseDim * m)];
        var temporalUp = config.TemperalDownsample.Reverse().ToArray();
        _convIn = new CausalConv3d(config.ZDim, dims[0], 3);
        _mid = new VaeMidBlock(dims[0], config.Dropout);
        _upBlocks = new VaeUpBlock[config.DimMult.Length];
        for (int i = 0; i < _upBlocks.Length; i++)
        {
            int inDim = i > 0 ? dims[i] / 2 : dims[i];
            bool? temporal = i != config.DimMult.Length - 1 ? temporalUp[i] : null;
            _upBlocks[i] = new VaeUpBlock(inDim, dims[i + 1], config.NumResBlocks, config.Dropout, temporal);
        }

        _normOut = new VaeRmsNorm(dims[^1], images: false);
        _convOut = new CausalConv3d(dims[^1], config.InputChannels, 3);
        register_module("conv_in", _convIn);
        register_module("mid_block", _mid);
        register_module("up_blocks", nn.ModuleList(_upBlocks));
        register_module("norm_out", _normOut);
        register_module("conv_out", _convOut);
    }

    /// <summary>The last conv; the RGBA initialisation sets its alpha row.</summary>
    public CausalConv3d ConvOut => _convOut;

    /// <summary>[B, z_dim, h, w] (after post_quant_conv) -> [B, input_channels, h*f, w*f].</summary>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = _mid.call(_convIn.call(input));
        foreach (var b in _upBlocks)
        {
            x = b.call(x);
        }

        return _convOut.call(nn.functional.silu(_normOut.call(x))).MoveToOuterDisposeScope();
    }
}
