namespace StableLayers.Model.Schedulers;

/// <summary>
/// A flow-matching noise schedule: <see cref="Sigmas"/> holds one sigma per step plus the final 0
/// (length steps + 1), decreasing from about 1 (pure noise) to 0 (clean latents). Values are kept in
/// float64 so that RL steps built on them (docs/RL.md) are reproducible; float32 views are derived.
/// </summary>
public sealed record FlowMatchSchedule(double[] Sigmas)
{
    /// <summary>Diffusers' training-timestep scale: timestep = sigma * 1000 (the transformer divides it back).</summary>
    public const double TimestepScale = 1000.0;

    /// <summary>Number of denoising steps (one fewer than <see cref="Sigmas"/>).</summary>
    public int Steps => Sigmas.Length - 1;

    /// <summary>Noise level at the start of step <paramref name="step"/>.</summary>
    public double Sigma(int step) => Sigmas[CheckStep(step)];

    /// <summary>Noise level at the end of step <paramref name="step"/> (0 after the last one).</summary>
    public double SigmaNext(int step) => Sigmas[CheckStep(step) + 1];

    /// <summary>The step's signed width sigma_next - sigma (negative while denoising).</summary>
    public double Dt(int step) => SigmaNext(step) - Sigma(step);

    /// <summary>Diffusers-style timesteps, sigma * 1000, one per step (no final entry).</summary>
    public double[] Timesteps() => Sigmas.Take(Steps).Select(s => s * TimestepScale).ToArray();

    /// <summary>The sigmas (with the final 0) rounded to float32, as a float32 pipeline would hold them.</summary>
    public float[] SigmasFloat32() => Sigmas.Select(s => (float)s).ToArray();

    /// <summary>The timesteps rounded to float32.</summary>
    public float[] TimestepsFloat32() => Timesteps().Select(t => (float)t).ToArray();

    private int CheckStep(int step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(step, Steps);
        return step;
    }
}
