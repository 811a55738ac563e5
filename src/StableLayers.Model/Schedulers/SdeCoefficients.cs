namespace StableLayers.Model.Schedulers;

/// <summary>
/// Everything one stochastic step needs, computed once in float64 (docs/RL.md): the mean is linear in the
/// latents and the velocity, mu = <see cref="XScale"/> x + <see cref="VScale"/> v, and the sample is
/// mu + <see cref="Std"/> eps. Stored with each trained step so training never re-derives sigmas from a schedule.
/// </summary>
/// <param name="Kind">Sde or Cps.</param>
/// <param name="Sigma">Noise level at the start of the step.</param>
/// <param name="SigmaNext">Noise level at its end (smaller, and above 0 for a true SDE step).</param>
/// <param name="NoiseLevel">The noise level a.</param>
/// <param name="SigmaT">The diffusion coefficient sigma_t (Sde); for Cps it equals <see cref="Std"/>. KL divides by 2 sigma_t^2.</param>
/// <param name="Std">The step's standard deviation s.</param>
/// <param name="XScale">Coefficient of x in the mean.</param>
/// <param name="VScale">Coefficient of v in the mean.</param>
public sealed record SdeCoefficients(
    SdeKind Kind,
    double Sigma,
    double SigmaNext,
    double NoiseLevel,
    double SigmaT,
    double Std,
    double XScale,
    double VScale)
{
    /// <summary>The signed step width sigma' - sigma (negative).</summary>
    public double Dt => SigmaNext - Sigma;
}
