using StableLayers.Model;
using static TorchSharp.torch;

namespace StableLayers.Training.Grpo;

/// <summary>One step's clipped policy loss and its diagnostics.</summary>
/// <param name="Loss">The scalar float64 loss (differentiable through log r).</param>
/// <param name="ClipFraction">Share of samples with |r - 1| &gt; clip range.</param>
/// <param name="RatioMean">Mean of r over the batch.</param>
/// <param name="RatioStd">Population std of r over the batch.</param>
/// <param name="LogRatioStd">Population std of log r over the batch (the quantity the rescale exponent is chosen by).</param>
/// <param name="ApproxKl">0.5 mean((log r)^2), as Flow-GRPO logs it.</param>
public sealed record SurrogateResult(Tensor Loss, double ClipFraction, double RatioMean, double RatioStd, double LogRatioStd, double ApproxKl);

/// <summary>
/// <see cref="SurrogateResult"/> with the statistics still on the device: <paramref name="Stats"/> is float64 [5] =
/// (clip fraction, ratio mean, ratio std, log-ratio std, approx KL), read with the step's other scalars in one transfer.
/// </summary>
public sealed record SurrogateTensors(Tensor Loss, Tensor Stats);

/// <summary>The PPO/GRPO clipped surrogate: L = mean over batch of max(-A r, -A clip(r, 1 - eps, 1 + eps)), in float64.</summary>
public static class ClippedSurrogate
{
    /// <summary>
    /// The loss of per-sample log ratios <paramref name="logRatio"/> ([B]) and advantages <paramref name="advantages"/>
    /// ([B]) with clip range <paramref name="clipRange"/>. Statistics are detached plain numbers.
    /// </summary>
    public static SurrogateResult Compute(Tensor logRatio, Tensor advantages, double clipRange)
    {
        using var scope = NewDisposeScope();
        var onDevice = ComputeOnDevice(logRatio, advantages, clipRange);
        var s = HostReads.Scalars([.. onDevice.Stats.unbind(0)]);
        return new SurrogateResult(onDevice.Loss.MoveToOuterDisposeScope(), s[0], s[1], s[2], s[3], s[4]);
    }

    /// <summary><see cref="Compute"/> without reading anything back to the host.</summary>
    public static SurrogateTensors ComputeOnDevice(Tensor logRatio, Tensor advantages, double clipRange)
    {
        ArgumentNullException.ThrowIfNull(logRatio);
        ArgumentNullException.ThrowIfNull(advantages);
        if (logRatio.dim() != 1 || !logRatio.shape.SequenceEqual(advantages.shape))
        {
            throw new ArgumentException($"log ratios [{string.Join(",", logRatio.shape)}] and advantages [{string.Join(",", advantages.shape)}] must both be [B]", nameof(advantages));
        }

        if (!(clipRange > 0) || double.IsInfinity(clipRange))
        {
            throw new ArgumentOutOfRangeException(nameof(clipRange), clipRange, "the clip range must be positive and finite");
        }

        using var scope = NewDisposeScope();
        var logR = logRatio.to(ScalarType.Float64);
        var a = advantages.to(ScalarType.Float64).detach();
        var ratio = logR.exp();
        var unclipped = a.neg().mul(ratio);
        var clipped = a.neg().mul(ratio.clamp(1.0 - clipRange, 1.0 + clipRange));
        var loss = maximum(unclipped, clipped).mean();

        Tensor stats;
        using (no_grad())
        {
            var r = ratio.detach();
            var lr = logR.detach();
            stats = stack([
                r.sub(1.0).abs().gt(clipRange).to(ScalarType.Float64).mean(),
                r.mean(),
                r.std(unbiased: false),
                lr.std(unbiased: false),
                lr.square().mean().mul(0.5),
            ]);
        }

        return new SurrogateTensors(loss.MoveToOuterDisposeScope(), stats.MoveToOuterDisposeScope());
    }
}
