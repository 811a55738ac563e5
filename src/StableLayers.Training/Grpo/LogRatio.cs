using StableLayers.Model.Schedulers;
using static TorchSharp.torch;

namespace StableLayers.Training.Grpo;

/// <summary>
/// Per-sample log importance ratios between the trained policy's step mean mu_theta and the sampling policy's
/// mu_old, in float64 (gradients flow into mu_theta). With mu_theta == mu_old every mode gives exactly 0.
/// </summary>
public static class LogRatio
{
    /// <summary>The default rescale exponent of <see cref="RatioMode.SumRescale"/>: 1 / sqrt(D).</summary>
    public const double DefaultExponent = 0.5;

    /// <summary>
    /// log r per sample, float64, shape [B]. Tensors are batch-first with equal shapes; D = elements per sample.
    /// <list type="bullet">
    /// <item>None: mean log p(x' | mu_theta, s) - mean log p(x' | mu_old, s) (the same float64 code as sampling).</item>
    /// <item>GuardMean: D^-1 sum_d eps_d dmu_d, which equals s (mean log p_theta - mean log p_old) + mean(dmu^2) / (2 s).</item>
    /// <item>SumRescale: D^(-<paramref name="exponent"/>) sum_d eps_d dmu_d; exponent 1 is the mean form.</item>
    /// </list>
    /// dmu = mu_theta - mu_old is formed in float64 and multiplied by the stored noise <paramref name="eps"/>
    /// directly (never a difference of two large sums). <paramref name="xNext"/> and <paramref name="std"/> are used by None only.
    /// </summary>
    public static Tensor Compute(
        RatioMode mode,
        Tensor muTheta,
        Tensor muOld,
        Tensor xNext,
        double std,
        Tensor eps,
        double exponent = DefaultExponent)
    {
        ArgumentNullException.ThrowIfNull(muTheta);
        ArgumentNullException.ThrowIfNull(muOld);
        ArgumentNullException.ThrowIfNull(xNext);
        ArgumentNullException.ThrowIfNull(eps);
        CheckShape(muTheta, muOld, nameof(muOld));
        CheckShape(muTheta, xNext, nameof(xNext));
        CheckShape(muTheta, eps, nameof(eps));
        if (muTheta.dim() < 1)
        {
            throw new ArgumentException("tensors need a batch dimension first", nameof(muTheta));
        }

        using var scope = NewDisposeScope();
        switch (mode)
        {
            case RatioMode.None:
                return SdeStep.LogProb(xNext, muTheta, std).sub(SdeStep.LogProb(xNext, muOld, std)).MoveToOuterDisposeScope();

            case RatioMode.GuardMean:
                return RescaledSum(muTheta, muOld, eps, 1.0).MoveToOuterDisposeScope();

            case RatioMode.SumRescale:
                if (!double.IsFinite(exponent))
                {
                    throw new ArgumentOutOfRangeException(nameof(exponent), exponent, "the rescale exponent must be finite");
                }

                return RescaledSum(muTheta, muOld, eps, exponent).MoveToOuterDisposeScope();

            default:
                throw new ArgumentOutOfRangeException(nameof(mode), mode, "unknown ratio mode");
        }
    }

    /// <summary>log r for a stored step: its mu_old, x', s and eps against <paramref name="muTheta"/>.</summary>
    public static Tensor Compute(RatioMode mode, Tensor muTheta, SdeTransition step, double exponent = DefaultExponent)
    {
        ArgumentNullException.ThrowIfNull(step);
        return Compute(mode, muTheta, step.MeanOld, step.XNext, step.Std, step.Eps, exponent);
    }

    /// <summary>Elements per sample, D.</summary>
    public static long ElementsPerSample(Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        return t.dim() <= 1 ? 1 : t.numel() / t.shape[0];
    }

    private static Tensor RescaledSum(Tensor muTheta, Tensor muOld, Tensor eps, double exponent)
    {
        long d = ElementsPerSample(muTheta);
        var dmu = muTheta.to(ScalarType.Float64).sub(muOld.to(ScalarType.Float64));
        var products = eps.to(ScalarType.Float64).mul(dmu);
        var sums = products.dim() == 1 ? products : products.flatten(1).sum(1);
        return sums.mul(Math.Pow(d, -exponent));
    }

    private static void CheckShape(Tensor reference, Tensor other, string name)
    {
        if (!reference.shape.SequenceEqual(other.shape))
        {
            throw new ArgumentException($"[{string.Join(",", other.shape)}] differs from mu_theta's [{string.Join(",", reference.shape)}]", name);
        }
    }
}
