using static TorchSharp.torch;

namespace StableLayers.Model.Schedulers;

/// <summary>
/// An ODE integrator for a flow-matching velocity field, run from sigma = 1 towards 0 along a
/// <see cref="FlowMatchSchedule"/>. The velocity function receives the float32 latents and the
/// step's sigma (the transformer's timestep) and returns v with x's shape.
/// </summary>
public interface IFlowSampler
{
    /// <summary>Model evaluations one step from <paramref name="sigma"/> to <paramref name="sigmaNext"/> costs.</summary>
    int EvaluationsForStep(double sigma, double sigmaNext);

    /// <summary>
    /// One step; returns the new float32 latents (owned by the caller's dispose scope). Usable on its own,
    /// e.g. by RL code that runs its own loop with stored sigmas.
    /// </summary>
    Tensor Step(Func<Tensor, float, Tensor> velocity, Tensor x, double sigma, double sigmaNext);
}

/// <summary>The shared sampling loop: one dispose scope per step so intermediate tensors never pile up.</summary>
public static class FlowSampling
{
    /// <summary>
    /// Runs every step of <paramref name="schedule"/> from <paramref name="x"/> (not modified or disposed) and
    /// returns the final latents. <paramref name="onStep"/> sees each step's result (index, latents) and must not keep it.
    /// </summary>
    public static Tensor Sample(
        this IFlowSampler sampler,
        Tensor x,
        FlowMatchSchedule schedule,
        Func<Tensor, float, Tensor> velocity,
        Action<int, Tensor>? onStep = null)
    {
        ArgumentNullException.ThrowIfNull(sampler);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(schedule);
        ArgumentNullException.ThrowIfNull(velocity);

        Tensor current = x;
        for (int i = 0; i < schedule.Steps; i++)
        {
            Tensor next;
            using (var scope = NewDisposeScope())
            {
                next = sampler.Step(velocity, current, schedule.Sigma(i), schedule.SigmaNext(i)).MoveToOuterDisposeScope();
            }

            // The previous step's result is ours alone (the caller's input is left untouched).
            if (!ReferenceEquals(current, x))
            {
                current.Dispose();
            }

            current = next;
            onStep?.Invoke(i, current);
        }

        return current;
    }

    /// <summary>Total model evaluations for a whole schedule.</summary>
    public static int Evaluations(this IFlowSampler sampler, FlowMatchSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(sampler);
        ArgumentNullException.ThrowIfNull(schedule);
        int n = 0;
        for (int i = 0; i < schedule.Steps; i++)
        {
            n += sampler.EvaluationsForStep(schedule.Sigma(i), schedule.SigmaNext(i));
        }

        return n;
    }

    /// <summary>The step width in float32, taken once from the float64 sigmas so every code path rounds identically.</summary>
    internal static float Dt(double sigma, double sigmaNext) => (float)(sigmaNext - sigma);

    /// <summary>Velocities are combined in float32 whatever the model's dtype (bf16 would bias the ODE and RL ratios).</summary>
    internal static Tensor Evaluate(Func<Tensor, float, Tensor> velocity, Tensor x, double sigma)
    {
        var v = velocity(x, (float)sigma) ?? throw new InvalidOperationException("the velocity function returned null");
        if (!v.shape.SequenceEqual(x.shape))
        {
            throw new InvalidOperationException(
                $"velocity shape [{string.Join(",", v.shape)}] differs from latents [{string.Join(",", x.shape)}]");
        }

        return v.to(ScalarType.Float32);
    }
}
