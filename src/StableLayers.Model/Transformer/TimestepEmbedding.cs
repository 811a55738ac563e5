using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Model.Transformer;

/// <summary>
/// diffusers <c>TimestepEmbedding</c>: <c>linear_1</c> (256 -> inner), SiLU, <c>linear_2</c> (inner -> inner),
/// applied to the sinusoidal projection of the timestep.
/// </summary>
public sealed class TimestepEmbedding : nn.Module<Tensor, Tensor>
{
    /// <summary>Channels of the sinusoidal projection (diffusers <c>Timesteps(num_channels=256)</c>).</summary>
    public const int Channels = 256;

    /// <summary>The model receives sigma in [0,1]; diffusers multiplies by 1000 inside the projection.</summary>
    public const double Scale = 1000.0;

    private readonly Linear linear_1;
    private readonly Linear linear_2;

    public TimestepEmbedding(long inner) : base(nameof(TimestepEmbedding))
    {
        linear_1 = nn.Linear(Channels, inner);
        linear_2 = nn.Linear(inner, inner);
        RegisterComponents();
    }

    public override Tensor forward(Tensor projected) => linear_2.call(nn.functional.silu(linear_1.call(projected)));

    /// <summary>
    /// Sinusoidal projection [B] -> [B, 256]: frequencies exp(-ln(10000) k / 128) for k in 0..127
    /// (downscale_freq_shift = 0 for Qwen), argument 1000 t, cos half first (flip_sin_to_cos = true).
    /// Computed in float32 whatever the timestep's dtype: diffusers' live path (<c>Timesteps</c> ->
    /// <c>embeddings.get_timestep_embedding</c>) keeps the frequencies in float32 and only the timestep itself
    /// carries the model dtype's rounding. Rounding the frequencies to bf16 as well moves arguments of ~1000 rad
    /// by whole radians (the sinusoid changes by up to 1.07), so a bf16 model would see different embeddings.
    /// </summary>
    public static Tensor Sinusoidal(Tensor timestep)
    {
        ArgumentNullException.ThrowIfNull(timestep);
        using var scope = NewDisposeScope();
        const int half = Channels / 2;
        var exponent = arange(half, dtype: ScalarType.Float32, device: timestep.device) * (-Math.Log(10000.0) / half);
        var freqs = exp(exponent);
        var args = timestep.to(ScalarType.Float32).unsqueeze(1) * freqs.unsqueeze(0) * Scale;
        return cat([cos(args), sin(args)], 1).MoveToOuterDisposeScope();
    }
}
