using System.Text.Json.Serialization;

namespace StableLayers.Model.Vae;

/// <summary>
/// Configuration of <see cref="AutoencoderKLQwenImage"/>, serialised with the same names as diffusers' vae/config.json
/// so that a released config deserialises unchanged (unknown keys such as "_diffusers_version" are ignored).
/// </summary>
public sealed partial record VaeConfig
{
    [JsonPropertyName("_class_name")]
    public string ClassName { get; init; } = "AutoencoderKLQwenImage";

    [JsonPropertyName("base_dim")]
    public int BaseDim { get; init; } = 96;

    [JsonPropertyName("z_dim")]
    public int ZDim { get; init; } = 16;

    [JsonPropertyName("dim_mult")]
    public int[] DimMult { get; init; } = [1, 2, 4, 4];

    [JsonPropertyName("num_res_blocks")]
    public int NumResBlocks { get; init; } = 2;

    /// <summary>Scales (1, 1/2, ...) at which the encoder inserts attention after each residual block; empty in the release.</summary>
    [JsonPropertyName("attn_scales")]
    public double[] AttnScales { get; init; } = [];

    /// <summary>Spelling kept from diffusers ("temperal"). One entry per resample stage: len(dim_mult) - 1.</summary>
    [JsonPropertyName("temperal_downsample")]
    public bool[] TemperalDownsample { get; init; } = [false, true, true];

    [JsonPropertyName("dropout")]
    public double Dropout { get; init; }

    /// <summary>Image channels in and out: 4 for the RGBA (Layered) variant, 3 for Qwen-Image.</summary>
    [JsonPropertyName("input_channels")]
    public int InputChannels { get; init; } = 4;

    /// <summary>Qwen-Image's published per-channel latent statistics (diffusers defaults and vae/config.json); assumed equal for Layered.</summary>
    [JsonPropertyName("latents_mean")]
    public float[] LatentsMean { get; init; } =
        [-0.7571f, -0.7089f, -0.9113f, 0.1075f, -0.1745f, 0.9653f, -0.1517f, 1.5508f,
         0.4134f, -0.0715f, 0.5517f, -0.3632f, -0.1922f, -0.9497f, 0.2503f, -0.2921f];

    [JsonPropertyName("latents_std")]
    public float[] LatentsStd { get; init; } =
        [2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
         3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f];

    /// <summary>The released Qwen-Image-Layered VAE (RGBA, 8x spatial compression, 126.9M parameters).</summary>
    public static VaeConfig Full { get; } = new();

    /// <summary>
    /// A small config for tests and experiments: same topology, fewer channels and stages.
    /// Latent statistics default to identity (mean 0, std 1) because none were measured for it.
    /// </summary>
    public static VaeConfig Tiny(int baseDim = 8, int zDim = 4, int[]? dimMult = null, int numResBlocks = 1, int inputChannels = 4)
    {
        dimMult ??= [1, 2];
        return new VaeConfig
        {
            BaseDim = baseDim,
            ZDim = zDim,
            DimMult = dimMult,
            NumResBlocks = numResBlocks,
            TemperalDownsample = Enumerable.Range(0, dimMult.Length - 1).Select(i => i > 0).ToArray(),
            InputChannels = inputChannels,
            LatentsMean = new float[zDim],
            LatentsStd = Enumerable.Repeat(1f, zDim).ToArray(),
        };
    }

    /// <summary>Pixels per latent along each spatial axis: one 2x resample per stage but the last.</summary>
    [JsonIgnore]
    public int SpatialCompression => 1 << (DimMult.Length - 1);

    /// <summary>Throws <see cref="ArgumentException"/> when the fields cannot describe a model.</summary>
    public void Validate()
    {
        if (BaseDim <= 0 || ZDim <= 0 || NumResBlocks <= 0 || InputChannels <= 0)
        {
            throw new ArgumentException("base_dim, z_dim, num_res_blocks and input_channels must be positive");
        }

        if (DimMult.Length == 0 || DimMult.Any(m => m <= 0))
        {
            throw new ArgumentException("dim_mult must be a non-empty list of positive multipliers");
        }

        if (TemperalDownsample.Length != DimMult.Length - 1)
        {
            throw new ArgumentException($"temperal_downsample needs {DimMult.Length - 1} entries (one per resample), got {TemperalDownsample.Length}");
        }

        if (LatentsMean.Length != ZDim || LatentsStd.Length != ZDim)
        {
            throw new ArgumentException($"latents_mean and latents_std need z_dim = {ZDim} entries");
        }

        if (LatentsStd.Any(s => !(s > 0)))
        {
            throw new ArgumentException("latents_std entries must be positive");
        }

        // The decoder's upsample convs halve channels; the next block expects exactly that.
        var mults = DimMult;
        if ((BaseDim * mults[^1]) % 2 != 0 || mults.Any(m => (BaseDim * m) % 2 != 0))
        {
            throw new ArgumentException("base_dim * dim_mult must be even (decoder upsampling halves channels)");
        }
    }
}
