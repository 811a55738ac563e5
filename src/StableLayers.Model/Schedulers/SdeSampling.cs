using static TorchSharp.torch;

namespace StableLayers.Model.Schedulers;

/// <summary>A stochastic sampling run: the final latents and the stored window steps, in step order.</summary>
/// <param name="Final">The float32 latents after the last step.</param>
/// <param name="Transitions">One record per SDE step taken.</param>
public sealed record SdeSamplingResult(Tensor Final, IReadOnlyList<SdeTransition> Transitions) : IDisposable
{
    /// <summary>Disposes the final latents and every transition.</summary>
    public void Dispose()
    {
        Final.Dispose();
        foreach (var t in Transitions)
        {
            t.Dispose();
        }
    }
}

/// <summary>
/// The Flow-GRPO training sampler: SDE steps inside an <see cref="SdeWindow"/>, Euler steps elsewhere, each
/// SDE step stored as an <see cref="SdeTransition"/>. All samples of the batch share the window.
/// </summary>
public static class SdeSampling
{
    /// <summary>
    /// Runs every step of <paramref name="schedule"/> from <paramref name="x"/> (batch first; not modified or
    /// disposed) under no_grad. Step i is an SDE step when the window contains it, the noise level is above 0
    /// and sigma' &gt; 0 (so the last step is always Euler); its noise comes from <paramref name="generator"/>.
    /// With a noise level of 0 or <see cref="SdeWindow.None"/> the run is exactly <see cref="EulerSampler"/>'s.
    /// Every returned tensor belongs to the caller's dispose scope.
    /// </summary>
    public static SdeSamplingResult Sample(
        Tensor x,
        FlowMatchSchedule schedule,
        Func<Tensor, float, Tensor> velocity,
        SdeWindow window,
        double noiseLevel,
        Generator generator,
        SdeKind kind = SdeKind.Sde)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(schedule);
        ArgumentNullException.ThrowIfNull(velocity);
        ArgumentNullException.ThrowIfNull(window);
        ArgumentNullException.ThrowIfNull(generator);
        if (x.dim() < 1)
        {
            throw new ArgumentException("latents need a batch dimension first", nameof(x));
        }

        using var noGrad = no_grad();
        var transitions = new List<SdeTransition>();
        Tensor current = x;
        for (int i = 0; i < schedule.Steps; i++)
        {
            Tensor next;
            using (var scope = NewDisposeScope())
            {
                if (IsSdeStep(schedule, window, noiseLevel, i))
                {
                    var coefficients = SdeStep.Coefficients(kind, schedule, i, noiseLevel);
                    var x32 = current.to(ScalarType.Float32);
                    var v = FlowSampling.Evaluate(velocity, x32, schedule.Sigma(i));
                    var step = SdeStep.Sample(x32, v, coefficients, generator);
                    transitions.Add(new SdeTransition(
                        i,
                        coefficients,
                        x32.clone().MoveToOuterDisposeScope(),
                        step.XNext.clone().MoveToOuterDisposeScope(),
                        step.Mean.MoveToOuterDisposeScope(),
                        step.Eps.MoveToOuterDisposeScope(),
                        step.LogProb.MoveToOuterDisposeScope()));
                    next = step.XNext.MoveToOuterDisposeScope();
                }
                else
                {
                    next = EulerSampler.Instance.Step(velocity, current, schedule.Sigma(i), schedule.SigmaNext(i)).MoveToOuterDisposeScope();
                }
            }

            // The previous step's result is ours alone (the caller's input is left untouched; transitions hold copies).
            if (!ReferenceEquals(current, x))
            {
                current.Dispose();
            }

            current = next;
        }

        // A zero-step schedule cannot exist (FlowMatchScheduler needs steps > 0), but never hand back the input itself.
        return new SdeSamplingResult(ReferenceEquals(current, x) ? x.to(ScalarType.Float32).clone() : current, transitions);
    }

    /// <summary>Whether step <paramref name="step"/> is stochastic: in the window, a positive noise level, and not the last step.</summary>
    public static bool IsSdeStep(FlowMatchSchedule schedule, SdeWindow window, double noiseLevel, int step)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        ArgumentNullException.ThrowIfNull(window);
        return noiseLevel > 0.0 && window.Contains(step) && schedule.SigmaNext(step) > 0.0;
    }
}
