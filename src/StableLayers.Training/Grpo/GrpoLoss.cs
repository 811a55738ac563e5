using StableLayers.Model.Schedulers;
using static TorchSharp.torch;

namespace StableLayers.Training.Grpo;

/// <summary>The optional parts of a step's loss: KL to the reference policy, the 1 / |dt| step weight, and their combination.</summary>
public static class GrpoLoss
{
    /// <summary>
    /// kl = mean((mu_theta - mu_ref)^2) / (2 sigma_t^2), the mean over every element of the batch, float64 scalar
    /// (differentiable through mu_theta). sigma_t is <see cref="SdeCoefficients.SigmaT"/>.
    /// </summary>
    public static Tensor ReferenceKl(Tensor muTheta, Tensor muRef, double sigmaT)
    {
        ArgumentNullException.ThrowIfNull(muTheta);
        ArgumentNullException.ThrowIfNull(muRef);
        if (!muTheta.shape.SequenceEqual(muRef.shape))
        {
            throw new ArgumentException($"reference mean [{string.Join(",", muRef.shape)}] differs from mu_theta's [{string.Join(",", muTheta.shape)}]", nameof(muRef));
        }

        if (!(sigmaT > 0) || double.IsInfinity(sigmaT))
        {
            throw new ArgumentOutOfRangeException(nameof(sigmaT), sigmaT, "sigma_t must be positive and finite");
        }

        using var scope = NewDisposeScope();
        var diff = muTheta.to(ScalarType.Float64).sub(muRef.to(ScalarType.Float64).detach());
        return diff.square().mean().div(2.0 * sigmaT * sigmaT).MoveToOuterDisposeScope();
    }

    /// <summary>GRPO-Guard's optional step reweight 1 / |dt| = 1 / (sigma - sigma').</summary>
    public static double InverseDtWeight(SdeCoefficients coefficients)
    {
        ArgumentNullException.ThrowIfNull(coefficients);
        double dt = Math.Abs(coefficients.Dt);
        if (!(dt > 0))
        {
            throw new ArgumentException("the step has zero width", nameof(coefficients));
        }

        return 1.0 / dt;
    }

    /// <summary>weight * (policy + beta * kl); <paramref name="kl"/> may be null when beta is 0.</summary>
    public static Tensor Total(Tensor policyLoss, Tensor? kl = null, double beta = 0.0, double stepWeight = 1.0)
    {
        ArgumentNullException.ThrowIfNull(policyLoss);
        if (beta != 0.0 && kl is null)
        {
            throw new ArgumentException("a non-zero beta needs the KL term", nameof(kl));
        }

        using var scope = NewDisposeScope();
        var total = beta != 0.0 ? policyLoss.add(kl!.to(policyLoss.dtype), beta) : policyLoss.alias();
        return (stepWeight == 1.0 ? total : total.mul(stepWeight)).MoveToOuterDisposeScope();
    }
}
