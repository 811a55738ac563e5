using static TorchSharp.torch;

namespace StableLayers.Model.Schedulers;

/// <summary>
/// Second-order (Heun / trapezoidal) flow-matching step, with the semantics of diffusers'
/// FlowMatchHeunDiscreteScheduler: an Euler predictor x~ = x + dt v(x, sigma), then a corrector
/// x_next = x + dt (v(x, sigma) + v(x~, sigma_next)) / 2. When sigma_next is 0 (the last step) the
/// corrector is skipped and the step is plain Euler, so a schedule of N steps costs 2N - 1 evaluations.
/// Exact for velocity fields that depend linearly on sigma alone, except on the final Euler step.
/// </summary>
public sealed class HeunSampler : IFlowSampler
{
    /// <summary>Shared instance (the sampler has no state between steps, unlike diffusers' two-call form).</summary>
    public static HeunSampler Instance { get; } = new();

    /// <inheritdoc />
    public int EvaluationsForStep(double sigma, double sigmaNext) => sigmaNext > 0 ? 2 : 1;

    /// <inheritdoc />
    public Tensor Step(Func<Tensor, float, Tensor> velocity, Tensor x, double sigma, double sigmaNext)
    {
        ArgumentNullException.ThrowIfNull(velocity);
        ArgumentNullException.ThrowIfNull(x);
        using var scope = NewDisposeScope();
        float dt = FlowSampling.Dt(sigma, sigmaNext);
        var x32 = x.to(ScalarType.Float32);
        var v1 = FlowSampling.Evaluate(velocity, x32, sigma);
        var predicted = x32.add(v1, dt);
        if (sigmaNext <= 0)
        {
            return predicted.MoveToOuterDisposeScope();
        }

        var v2 = FlowSampling.Evaluate(velocity, predicted, sigmaNext);
        // Same order of operations as diffusers: average the derivatives, then one step from x.
        var averaged = v1.add(v2).mul(0.5f);
        return x32.add(averaged, dt).MoveToOuterDisposeScope();
    }
}
