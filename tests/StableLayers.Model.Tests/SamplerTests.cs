using StableLayers.Model.Schedulers;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public class SamplerTests
{
    private static readonly FlowMatchSchedule Schedule = FlowMatchScheduler.ForConditionTokens(1600).Schedule(10);

    private static float Max(Tensor t) => t.abs().max().item<float>();

    [Fact]
    public void EulerOnLinearFieldMatchesItsClosedFormProduct()
    {
        // v = k x: each Euler step multiplies by (1 + k dt), so x_N = x_0 * prod(1 + k dt_i).
        using var scope = NewDisposeScope();
        const float k = 0.7f;
        var x0 = tensor(new float[] { 1f, -2f, 0.5f });
        var result = EulerSampler.Instance.Sample(x0, Schedule, (x, _) => x.mul(k));
        double factor = 1.0;
        for (int i = 0; i < Schedule.Steps; i++)
        {
            factor *= 1.0 + (k * Schedule.Dt(i));
        }

        Assert.True(result.allclose(x0.mul((float)factor), rtol: 1e-5, atol: 1e-6));
        // and it approximates the exact flow x0 * exp(-k) from sigma 1 to 0
        Assert.True(Max(result - x0.mul(MathF.Exp(-k))) < 0.1f);
    }

    [Fact]
    public void ConstantVelocityIsExactForBothSamplers()
    {
        using var scope = NewDisposeScope();
        var x0 = tensor(new float[] { 0.3f, -1f });
        var c = tensor(new float[] { 2f, -0.5f });
        foreach (IFlowSampler sampler in new IFlowSampler[] { EulerSampler.Instance, HeunSampler.Instance })
        {
            var result = sampler.Sample(x0, Schedule, (x, _) => c);
            Assert.True(result.allclose(x0 - c, atol: 1e-6), sampler.GetType().Name);
        }
    }

    [Fact]
    public void VelocityLinearInSigmaIsExactForHeunButNotEuler()
    {
        // v = a + b sigma: x(sigma') = x(sigma) + a (sigma' - sigma) + b (sigma'^2 - sigma^2) / 2.
        using var scope = NewDisposeScope();
        const float a = 0.5f, b = 3f;
        var x0 = tensor(new float[] { 1f, 2f });
        Tensor Field(Tensor x, float sigma) => full_like(x, a + (b * sigma));
        static double Exact(double s, double sn) => (a * (sn - s)) + (b * ((sn * sn) - (s * s)) / 2);

        var x = x0;
        for (int i = 0; i < Schedule.Steps - 1; i++)
        {
            var heun = HeunSampler.Instance.Step(Field, x, Schedule.Sigma(i), Schedule.SigmaNext(i));
            var euler = EulerSampler.Instance.Step(Field, x, Schedule.Sigma(i), Schedule.SigmaNext(i));
            var exact = x + (float)Exact(Schedule.Sigma(i), Schedule.SigmaNext(i));
            Assert.True(heun.allclose(exact, atol: 1e-6), $"Heun step {i}");
            Assert.False(euler.allclose(exact, atol: 1e-4), $"Euler step {i} should not be exact");
            x = heun;
        }

        // The last step (to sigma 0) is plain Euler in diffusers' Heun: its error is exactly -b s^2 / 2.
        double s = Schedule.Sigma(Schedule.Steps - 1);
        var full = HeunSampler.Instance.Sample(x0, Schedule, Field);
        double expected = Exact(1.0, 0.0) - (b * s * s / 2);
        Assert.True(full.allclose(x0 + (float)expected, atol: 1e-5));
    }

    [Fact]
    public void StraightLineFlowRecoversTheCleanSampleWithEitherSampler()
    {
        // Rectified flow x_sigma = sigma n + (1 - sigma) x_clean has v = (x - x_clean) / sigma along the path.
        using var scope = NewDisposeScope();
        manual_seed(3);
        var clean = randn(2, 5, 8);
        var noise = randn(2, 5, 8);
        foreach (IFlowSampler sampler in new IFlowSampler[] { EulerSampler.Instance, HeunSampler.Instance })
        {
            var result = sampler.Sample(noise, Schedule, (x, sigma) => x.sub(clean).div(sigma));
            Assert.True(result.allclose(clean, atol: 1e-4), sampler.GetType().Name);
        }
    }

    [Fact]
    public void HeunCostsTwoEvaluationsPerStepExceptTheLast()
    {
        using var scope = NewDisposeScope();
        int calls = 0;
        int steps = 0;
        var result = HeunSampler.Instance.Sample(zeros(3), Schedule, (x, _) => { calls++; return ones_like(x); }, (_, _) => steps++);
        Assert.Equal((2 * Schedule.Steps) - 1, calls);
        Assert.Equal(calls, HeunSampler.Instance.Evaluations(Schedule));
        Assert.Equal(Schedule.Steps, EulerSampler.Instance.Evaluations(Schedule));
        Assert.Equal(Schedule.Steps, steps);
    }

    [Fact]
    public void SamplingLeavesInputAliveAndReturnsFloat32FromBFloat16Velocity()
    {
        using var scope = NewDisposeScope();
        var x0 = ones(4);
        var result = EulerSampler.Instance.Sample(x0, Schedule, (x, _) => x.to(ScalarType.BFloat16));
        Assert.Equal(ScalarType.Float32, result.dtype);
        Assert.Equal(1f, x0[0].item<float>());
        var update = EulerSampler.Update(x0, ones(4), 1.0, 0.25);
        Assert.True(update.allclose(full(4, 0.25f)));
    }

    [Fact]
    public void VelocityOfWrongShapeIsRejected()
    {
        using var scope = NewDisposeScope();
        Assert.Throws<InvalidOperationException>(() => EulerSampler.Instance.Step((x, _) => ones(2), zeros(3), 1.0, 0.5));
    }
}
