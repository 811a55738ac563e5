using static TorchSharp.torch;

namespace StableLayers.Model.Schedulers;

/// <summary>
/// The stochastic flow-matching step with its log-probability, exactly as docs/RL.md states it (Flow-GRPO's
/// "sde" form and the coefficient-preserving variant). Coefficients are computed in float64 and applied in
/// float32; log-densities are computed in float64. Never bf16.
/// </summary>
public static class SdeStep
{
    /// <summary>log sqrt(2 pi), the Gaussian's normalising constant per element.</summary>
    public static readonly double LogSqrtTwoPi = 0.5 * Math.Log(2.0 * Math.PI);

    /// <summary>
    /// Coefficients of step <paramref name="step"/> of <paramref name="schedule"/>. For the Sde kind the
    /// denominator of sigma_t uses sigma~ = sigmas[1] when sigma == 1 (compared exactly in float64), else sigma.
    /// </summary>
    public static SdeCoefficients Coefficients(SdeKind kind, FlowMatchSchedule schedule, int step, double noiseLevel)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        double sigma = schedule.Sigma(step);
        double sigmaNext = schedule.SigmaNext(step);
        double sigmaOne = schedule.Sigmas.Length > 1 ? schedule.Sigmas[1] : sigma;
        return Coefficients(kind, sigma, sigmaNext, noiseLevel, sigmaOne);
    }

    /// <summary>
    /// Coefficients from explicit sigmas. <paramref name="sigmaOne"/> is the schedule's sigmas[1], substituted in
    /// sigma_t's denominator when <paramref name="sigma"/> is exactly 1. A noise level of 0 gives the Euler step
    /// (x scale exactly 1, v scale exactly sigma' - sigma, std 0) for either kind. A positive noise level needs
    /// sigma' &gt; 0: the last step (sigma' = 0) is never stochastic.
    /// </summary>
    public static SdeCoefficients Coefficients(SdeKind kind, double sigma, double sigmaNext, double noiseLevel, double sigmaOne)
    {
        if (!(sigma > 0.0 && sigma <= 1.0))
        {
            throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "sigma must lie in (0, 1]");
        }

        if (!(sigmaNext >= 0.0 && sigmaNext < sigma))
        {
            throw new ArgumentOutOfRangeException(nameof(sigmaNext), sigmaNext, $"sigma' must lie in [0, sigma = {sigma})");
        }

        if (!(noiseLevel >= 0.0) || double.IsInfinity(noiseLevel))
        {
            throw new ArgumentOutOfRangeException(nameof(noiseLevel), noiseLevel, "the noise level must be finite and non-negative");
        }

        double dt = sigmaNext - sigma;
        if (noiseLevel == 0.0)
        {
            return new SdeCoefficients(kind, sigma, sigmaNext, 0.0, 0.0, 0.0, 1.0, dt);
        }

        if (sigmaNext == 0.0)
        {
            throw new ArgumentException("the last step (sigma' = 0) is never an SDE step: its Gaussian is degenerate", nameof(sigmaNext));
        }

        return kind switch
        {
            SdeKind.Sde => SdeForm(sigma, sigmaNext, noiseLevel, sigmaOne),
            SdeKind.Cps => CpsForm(sigma, sigmaNext, noiseLevel),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown SDE kind"),
        };
    }

    private static SdeCoefficients SdeForm(double sigma, double sigmaNext, double noiseLevel, double sigmaOne)
    {
        double dt = sigmaNext - sigma;
        double tilde = sigma == 1.0 ? sigmaOne : sigma;
        if (!(tilde < 1.0 && tilde >= 0.0))
        {
            throw new ArgumentOutOfRangeException(nameof(sigmaOne), sigmaOne, "sigma~ must lie in [0, 1)");
        }

        double sigmaT = noiseLevel * Math.Sqrt(sigma / (1.0 - tilde));
        double t2 = sigmaT * sigmaT;
        double xScale = 1.0 + (t2 * dt / (2.0 * sigma));
        double vScale = (1.0 + (t2 * (1.0 - sigma) / (2.0 * sigma))) * dt;
        double std = sigmaT * Math.Sqrt(-dt);
        return new SdeCoefficients(SdeKind.Sde, sigma, sigmaNext, noiseLevel, sigmaT, std, xScale, vScale);
    }

    private static SdeCoefficients CpsForm(double sigma, double sigmaNext, double noiseLevel)
    {
        // x0 = x - sigma v, x1 = x + (1 - sigma) v, mu = x0 (1 - sigma') + x1 sqrt(sigma'^2 - std^2),
        // collected into the x and v coefficients.
        double std = sigmaNext * Math.Sin(noiseLevel * Math.PI / 2.0);
        double root = Math.Sqrt(Math.Max(0.0, (sigmaNext * sigmaNext) - (std * std)));
        double xScale = (1.0 - sigmaNext) + root;
        double vScale = (-sigma * (1.0 - sigmaNext)) + ((1.0 - sigma) * root);
        return new SdeCoefficients(SdeKind.Cps, sigma, sigmaNext, noiseLevel, std, std, xScale, vScale);
    }

    /// <summary>
    /// The mean mu = x scale * x + v scale * v in float32 (gradients flow through <paramref name="v"/>). With a
    /// noise level of 0 this is bit-for-bit <see cref="EulerSampler.Update"/>.
    /// </summary>
    public static Tensor Mean(Tensor x, Tensor v, SdeCoefficients coefficients)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(v);
        ArgumentNullException.ThrowIfNull(coefficients);
        if (!x.shape.SequenceEqual(v.shape))
        {
            throw new ArgumentException($"velocity [{string.Join(",", v.shape)}] and latents [{string.Join(",", x.shape)}] differ in shape", nameof(v));
        }

        using var scope = NewDisposeScope();
        var x32 = x.to(ScalarType.Float32);
        var v32 = v.to(ScalarType.Float32);
        float xScale = (float)coefficients.XScale;
        var scaled = xScale == 1f ? x32 : x32.mul(xScale);
        return scaled.add(v32, (float)coefficients.VScale).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Per-element Gaussian log-density in float64: -(x' - mu)^2 / (2 s^2) - log s - log sqrt(2 pi).
    /// </summary>
    public static Tensor LogProbPerElement(Tensor xNext, Tensor mean, double std)
    {
        ArgumentNullException.ThrowIfNull(xNext);
        ArgumentNullException.ThrowIfNull(mean);
        if (!(std > 0.0) || double.IsInfinity(std))
        {
            throw new ArgumentOutOfRangeException(nameof(std), std, "the log-density needs a positive, finite std");
        }

        using var scope = NewDisposeScope();
        var diff = xNext.to(ScalarType.Float64).sub(mean.to(ScalarType.Float64));
        return diff.square().div(-2.0 * std * std).sub(Math.Log(std) + LogSqrtTwoPi).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Per-sample log p: <see cref="LogProbPerElement"/> meaned over every non-batch dimension (the reference
    /// implementation's reduction), float64, shape [B].
    /// </summary>
    public static Tensor LogProb(Tensor xNext, Tensor mean, double std)
    {
        using var scope = NewDisposeScope();
        var perElement = LogProbPerElement(xNext, mean, std);
        return MeanOverSample(perElement).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Draws x' = mu + s eps with eps ~ N(0, I) from <paramref name="generator"/> (float32) and returns mu, x',
    /// eps and log p(x'). Needs a positive std (noise level above 0, not the last step).
    /// </summary>
    public static SdeStepResult Sample(Tensor x, Tensor v, SdeCoefficients coefficients, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(coefficients);
        ArgumentNullException.ThrowIfNull(generator);
        if (!(coefficients.Std > 0.0))
        {
            throw new ArgumentException("sampling needs a positive std (noise level above 0, sigma' above 0)", nameof(coefficients));
        }

        using var scope = NewDisposeScope();
        var mean = Mean(x, v, coefficients);
        var eps = randn(x.shape, dtype: ScalarType.Float32, device: x.device, generator: generator);
        var xNext = mean.add(eps, (float)coefficients.Std);
        var logProb = LogProb(xNext, mean, coefficients.Std);
        return new SdeStepResult(
            mean.MoveToOuterDisposeScope(),
            xNext.MoveToOuterDisposeScope(),
            eps.MoveToOuterDisposeScope(),
            logProb.MoveToOuterDisposeScope());
    }

    /// <summary>Mean over all dimensions but the first (a 1-D tensor is already one value per sample).</summary>
    internal static Tensor MeanOverSample(Tensor t)
    {
        if (t.dim() < 1)
        {
            throw new ArgumentException("tensors must have a batch dimension first", nameof(t));
        }

        if (t.dim() == 1)
        {
            return t.alias();
        }

        var dims = Enumerable.Range(1, (int)t.dim() - 1).Select(d => (long)d).ToArray();
        return t.mean(dims);
    }
}
