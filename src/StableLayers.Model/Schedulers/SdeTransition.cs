using static TorchSharp.torch;

namespace StableLayers.Model.Schedulers;

/// <summary>
/// One stored stochastic step of a sampling run, everything the GRPO update needs (docs/RL.md "Store per
/// trained step"). Tensors are batch-first; transitions of the same step (equal step index and coefficients)
/// from several candidates concatenate with <see cref="Concat"/>.
/// </summary>
/// <param name="Step">The step's index in the schedule.</param>
/// <param name="Coefficients">sigma, sigma', noise level, sigma_t, std s and the mean's coefficients (float64).</param>
/// <param name="X">x_t, the float32 latents the step started from.</param>
/// <param name="XNext">x_{t-1}, the float32 sample it produced.</param>
/// <param name="MeanOld">mu_old, the sampling policy's float32 mean.</param>
/// <param name="Eps">The standard-normal noise drawn, float32: XNext = MeanOld + s Eps.</param>
/// <param name="LogProbOld">log p_old per sample (float64 element log-densities meaned over non-batch dims), shape [B].</param>
public sealed record SdeTransition(
    int Step,
    SdeCoefficients Coefficients,
    Tensor X,
    Tensor XNext,
    Tensor MeanOld,
    Tensor Eps,
    Tensor LogProbOld) : IDisposable
{
    /// <summary>Noise level at the start of the step.</summary>
    public double Sigma => Coefficients.Sigma;

    /// <summary>Noise level at its end.</summary>
    public double SigmaNext => Coefficients.SigmaNext;

    /// <summary>The step's standard deviation s.</summary>
    public double Std => Coefficients.Std;

    /// <summary>Number of samples.</summary>
    public long BatchSize => X.shape[0];

    /// <summary>
    /// Concatenates transitions of the same step along the batch dimension (new tensors in the caller's dispose
    /// scope). Throws when the steps or coefficients differ: train such candidates in separate batches.
    /// </summary>
    public static SdeTransition Concat(IReadOnlyList<SdeTransition> parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        if (parts.Count == 0)
        {
            throw new ArgumentException("nothing to concatenate", nameof(parts));
        }

        var first = parts[0];
        foreach (var p in parts)
        {
            if (p.Step != first.Step || p.Coefficients != first.Coefficients)
            {
                throw new ArgumentException($"transitions of different steps ({first.Step} and {p.Step}) or coefficients cannot share a batch", nameof(parts));
            }
        }

        return new SdeTransition(
            first.Step,
            first.Coefficients,
            cat(parts.Select(p => p.X).ToList(), 0),
            cat(parts.Select(p => p.XNext).ToList(), 0),
            cat(parts.Select(p => p.MeanOld).ToList(), 0),
            cat(parts.Select(p => p.Eps).ToList(), 0),
            cat(parts.Select(p => p.LogProbOld).ToList(), 0));
    }

    /// <summary>Samples <paramref name="start"/> .. start + length - 1 (views, in the caller's dispose scope).</summary>
    public SdeTransition Slice(long start, long length) => this with
    {
        X = X.narrow(0, start, length),
        XNext = XNext.narrow(0, start, length),
        MeanOld = MeanOld.narrow(0, start, length),
        Eps = Eps.narrow(0, start, length),
        LogProbOld = LogProbOld.narrow(0, start, length),
    };

    /// <summary>Disposes the tensors.</summary>
    public void Dispose()
    {
        X.Dispose();
        XNext.Dispose();
        MeanOld.Dispose();
        Eps.Dispose();
        LogProbOld.Dispose();
    }
}
