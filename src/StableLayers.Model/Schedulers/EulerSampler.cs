using static TorchSharp.torch;

namespace StableLayers.Model.Schedulers;

/// <summary>
/// First-order flow-matching step, as diffusers' FlowMatchEulerDiscreteScheduler.step:
/// x_next = x + (sigma_next - sigma) * v(x, sigma). One model evaluation per step.
/// </summary>
public sealed class EulerSampler : IFlowSampler
{
    /// <summary>Shared instance (the sampler has no state).</summary>
    public static EulerSampler Instance { get; } = new();

    /// <inheritdoc />
    public int EvaluationsForStep(double sigma, double sigmaNext) => 1;

    /// <summary>The update alone, for callers that already have v (e.g. after CFG): x + (sigma_next - sigma) v in float32.</summary>
    public static Tensor Update(Tensor x, Tensor v, double sigma, double sigmaNext)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(v);
        using var scope = NewDisposeScope();
        var x32 = x.to(ScalarType.Float32);
        var v32 = v.to(ScalarType.Float32);
        return x32.add(v32, FlowSampling.Dt(sigma, sigmaNext)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public Tensor Step(Func<Tensor, float, Tensor> velocity, Tensor x, double sigma, double sigmaNext)
    {
        ArgumentNullException.ThrowIfNull(velocity);
        ArgumentNullException.ThrowIfNull(x);
        using var scope = NewDisposeScope();
        var x32 = x.to(ScalarType.Float32);
        var v = FlowSampling.Evaluate(velocity, x32, sigma);
        return x32.add(v, FlowSampling.Dt(sigma, sigmaNext)).MoveToOuterDisposeScope();
    }
}
