using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Vae;

/// <summary>
/// The Qwen-Image(-Layered) VAE with diffusers' module and parameter names and shapes, so a diffusers
/// vae/diffusion_pytorch_model.safetensors loads unchanged, executed frame by frame as 2D convolutions (only single
/// images are ever encoded; see <see cref="CausalConv3d"/>). forward(x) is a deterministic reconstruction
/// (posterior mean, no clamp), convenient for training.
/// </summary>
public sealed class AutoencoderKLQwenImage : VaeModule
{
    private readonly VaeEncoder _encoder;
    private readonly CausalConv3d _quantConv;
    private readonly CausalConv3d _postQuantConv;
    private readonly VaeDecoder _decoder;

    /// <param name="config">Model shape; validated.</param>
    /// <param name="rgbaInit">Apply <see cref="ApplyRgbaInit"/> after the random initialisation (fresh models only).</param>
    public AutoencoderKLQwenImage(VaeConfig config, bool rgbaInit = false)
        : base(nameof(AutoencoderKLQwenImage))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        _encoder = new VaeEncoder(config);
        _quantConv = new CausalConv3d(config.ZDim * 2, config.ZDim * 2, 1);
        _postQuantConv = new CausalConv3d(config.ZDim, config.ZDim, 1);
        _decoder = new VaeDecoder(config);
        register_module("encoder", _encoder);
        register_module("quant_conv", _quantConv);
        register_module("post_quant_conv", _postQuantConv);
        register_module("decoder", _decoder);
        if (rgbaInit)
        {
            ApplyRgbaInit();
        }
    }

    public VaeConfig Config { get; }

    public int SpatialCompression => Config.SpatialCompression;

    /// <summary>The dtype the VAE computes in (that of its parameters); inputs are cast to it, outputs returned as float32.</summary>
    public ScalarType DType => parameters().First().dtype;

    /// <summary>Images [B, input_channels, H, W] in [-1,1] (H, W multiples of the compression) -> posterior mean [B, z, H/f, W/f], before normalisation.</summary>
    public Tensor EncodeMean(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        CheckImages(images);
        using var scope = NewDisposeScope();
        // The VAE may run in bf16 (loaded with a dtype); latents stay float32 for the schedule and SDE maths.
        var moments = _quantConv.call(_encoder.call(images.to(DType)));
        return moments.narrow(1, 0, Config.ZDim).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>Latents [B, z, h, w] (raw, i.e. de-normalised) -> images [B, input_channels, h*f, w*f], not clamped.</summary>
    public Tensor Decode(Tensor z)
    {
        ArgumentNullException.ThrowIfNull(z);
        if (z.dim() != 4 || z.shape[1] != Config.ZDim)
        {
            throw new ArgumentException($"expected latents [B,{Config.ZDim},h,w], got [{string.Join(",", z.shape)}]", nameof(z));
        }

        using var scope = NewDisposeScope();
        return _decoder.call(_postQuantConv.call(z.to(DType))).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>Deterministic reconstruction: Decode(EncodeMean(x)).</summary>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return Decode(EncodeMean(input)).MoveToOuterDisposeScope();
    }

    /// <summary>(z - latents_mean) / latents_std per channel; z is [B, z, h, w] or [B, z, T, h, w].</summary>
    public Tensor Normalize(Tensor z)
    {
        ArgumentNullException.ThrowIfNull(z);
        using var scope = NewDisposeScope();
        var (mean, std) = Stats(z);
        return ((z - mean) / std).MoveToOuterDisposeScope();
    }

    /// <summary>Inverse of <see cref="Normalize"/>: z * latents_std + latents_mean.</summary>
    public Tensor Denormalize(Tensor z)
    {
        ArgumentNullException.ThrowIfNull(z);
        using var scope = NewDisposeScope();
        var (mean, std) = Stats(z);
        return ((z * std) + mean).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The Qwen RGBA initialisation (from an RGB model in the paper): the alpha input column of encoder.conv_in is
    /// zero (alpha does not disturb the RGB features), the alpha output row of decoder.conv_out is zero with bias 1
    /// (the decoder starts out predicting opaque pixels). Requires input_channels = 4.
    /// </summary>
    public void ApplyRgbaInit()
    {
        if (Config.InputChannels != 4)
        {
            throw new InvalidOperationException("RGBA initialisation needs input_channels = 4");
        }

        using var noGrad = no_grad();
        _encoder.ConvIn.Weight.select(1, 3).zero_();
        _decoder.ConvOut.Weight.select(0, 3).zero_();
        _decoder.ConvOut.Bias[3] = 1f;
    }

    private (Tensor Mean, Tensor Std) Stats(Tensor z)
    {
        if (z.dim() < 2 || z.shape[1] != Config.ZDim)
        {
            throw new ArgumentException($"expected latents with {Config.ZDim} channels in dim 1, got [{string.Join(",", z.shape)}]", nameof(z));
        }

        var shape = new long[z.dim()];
        Array.Fill(shape, 1L);
        shape[1] = Config.ZDim;
        var mean = tensor(Config.LatentsMean, device: z.device).to(z.dtype).view(shape);
        var std = tensor(Config.LatentsStd, device: z.device).to(z.dtype).view(shape);
        return (mean, std);
    }

    private void CheckImages(Tensor images)
    {
        int f = Config.SpatialCompression;
        if (images.dim() != 4 || images.shape[1] != Config.InputChannels || images.shape[2] % f != 0 || images.shape[3] % f != 0)
        {
            throw new ArgumentException(
                $"expected images [B,{Config.InputChannels},H,W] with H and W multiples of {f}, got [{string.Join(",", images.shape)}]", nameof(images));
        }
    }
}
