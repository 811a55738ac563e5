using StableLayers.Model.Schedulers;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public class SdeStepTests
{
    private const double A = 1.2;
    private static readonly FlowMatchSchedule Schedule = FlowMatchScheduler.ForConditionTokens(1600).Schedule(10);

    private static double[] Doubles(Tensor t) => t.to(ScalarType.Float64).contiguous().data<double>().ToArray();

    private static Tensor Velocity(Tensor x, float sigma) => x.mul(0.5f).add(sigma);

    [Fact]
    public void SdeMeanAndStdMatchAnIndependentDoubleComputation()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(seed: 11);
        var x = randn([2, 3, 4], generator: gen);
        var v = randn([2, 3, 4], generator: gen);
        double[] xs = Doubles(x), vs = Doubles(v);
        Assert.Equal(1.0, Schedule.Sigmas[0]);
        for (int i = 0; i < Schedule.Steps - 1; i++)
        {
            double sigma = Schedule.Sigmas[i], next = Schedule.Sigmas[i + 1], dt = next - sigma;
            double tilde = sigma == 1.0 ? Schedule.Sigmas[1] : sigma;
            double sigmaT = A * Math.Sqrt(sigma / (1 - tilde));
            double std = sigmaT * Math.Sqrt(-dt);
            var c = SdeStep.Coefficients(SdeKind.Sde, Schedule, i, A);
            Assert.Equal(std, c.Std, 12);
            Assert.Equal(sigmaT, c.SigmaT, 12);
            Assert.True(double.IsFinite(c.Std) && c.Std > 0, $"step {i}: std {c.Std}");

            var mu = Doubles(SdeStep.Mean(x, v, c));
            for (int k = 0; k < xs.Length; k++)
            {
                double expected = (xs[k] * (1 + (sigmaT * sigmaT * dt / (2 * sigma))))
                    + (vs[k] * (1 + (sigmaT * sigmaT * (1 - sigma) / (2 * sigma))) * dt);
                Assert.True(Math.Abs(mu[k] - expected) < 1e-5 * (1 + Math.Abs(expected)), $"step {i} element {k}: {mu[k]} vs {expected}");
            }
        }
    }

    [Fact]
    public void SigmaOneUsesTheSecondSigmaOnlyInTheDenominator()
    {
        // With sigma = 1 the denominator would be 0; sigma~ = sigmas[1] makes it a * sqrt(1 / (1 - sigmas[1])).
        var c = SdeStep.Coefficients(SdeKind.Sde, 1.0, 0.8, 1.0, sigmaOne: 0.9);
        Assert.Equal(Math.Sqrt(1.0 / 0.1), c.SigmaT, 12);
        Assert.Equal(Math.Sqrt(10.0) * Math.Sqrt(0.2), c.Std, 12);
        // Elsewhere sigma~ = sigma and sigmaOne is ignored.
        var d = SdeStep.Coefficients(SdeKind.Sde, 0.5, 0.4, 1.0, sigmaOne: 0.9);
        Assert.Equal(Math.Sqrt(0.5 / 0.5), d.SigmaT, 12);
    }

    [Fact]
    public void CpsMeanAndStdMatchAnIndependentDoubleComputation()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(seed: 12);
        var x = randn([2, 5], generator: gen);
        var v = randn([2, 5], generator: gen);
        double[] xs = Doubles(x), vs = Doubles(v);
        for (int i = 0; i < Schedule.Steps - 1; i++)
        {
            double sigma = Schedule.Sigmas[i], next = Schedule.Sigmas[i + 1];
            double std = next * Math.Sin(A * Math.PI / 2);
            var c = SdeStep.Coefficients(SdeKind.Cps, Schedule, i, A);
            Assert.Equal(std, c.Std, 12);
            var mu = Doubles(SdeStep.Mean(x, v, c));
            for (int k = 0; k < xs.Length; k++)
            {
                double x0 = xs[k] - (sigma * vs[k]);
                double x1 = xs[k] + ((1 - sigma) * vs[k]);
                double expected = (x0 * (1 - next)) + (x1 * Math.Sqrt((next * next) - (std * std)));
                Assert.True(Math.Abs(mu[k] - expected) < 1e-5 * (1 + Math.Abs(expected)), $"step {i} element {k}: {mu[k]} vs {expected}");
            }
        }
    }

    [Fact]
    public void NoiseLevelZeroIsTheEulerStepExactly()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(seed: 13);
        var x = randn([3, 7], generator: gen);
        var v = randn([3, 7], generator: gen);
        foreach (var kind in new[] { SdeKind.Sde, SdeKind.Cps })
        {
            for (int i = 0; i < Schedule.Steps; i++)
            {
                var c = SdeStep.Coefficients(kind, Schedule, i, 0.0);
                Assert.Equal(0.0, c.Std);
                var euler = EulerSampler.Update(x, v, Schedule.Sigma(i), Schedule.SigmaNext(i));
                Assert.True(SdeStep.Mean(x, v, c).Identical(euler), $"{kind} step {i}");
            }
        }

        // A positive noise level does change the mean (the check above could fail).
        var noisy = SdeStep.Mean(x, v, SdeStep.Coefficients(SdeKind.Sde, Schedule, 2, A));
        Assert.False(noisy.allclose(EulerSampler.Update(x, v, Schedule.Sigma(2), Schedule.SigmaNext(2)), atol: 1e-4));
    }

    [Theory]
    [InlineData(SdeKind.Sde)]
    [InlineData(SdeKind.Cps)]
    public void SamplesHaveTheStatedMeanAndVariance(SdeKind kind)
    {
        using var scope = NewDisposeScope();
        const int step = 3;
        const long n = 200_000;
        var x = full([2, n / 2], 0.3f);
        var v = full([2, n / 2], -0.7f);
        var c = SdeStep.Coefficients(kind, Schedule, step, A);
        double sigma = Schedule.Sigmas[step], next = Schedule.Sigmas[step + 1], dt = next - sigma;
        double mu, s;
        if (kind == SdeKind.Sde)
        {
            double st = A * Math.Sqrt(sigma / (1 - sigma));
            mu = (0.3 * (1 + (st * st * dt / (2 * sigma)))) + (-0.7 * (1 + (st * st * (1 - sigma) / (2 * sigma))) * dt);
            s = st * Math.Sqrt(-dt);
        }
        else
        {
            s = next * Math.Sin(A * Math.PI / 2);
            mu = ((0.3 + (0.7 * sigma)) * (1 - next)) + ((0.3 - (0.7 * (1 - sigma))) * Math.Sqrt((next * next) - (s * s)));
        }

        var result = SdeStep.Sample(x, v, c, new Generator(seed: 14));
        var d = result.XNext.to(ScalarType.Float64);
        double mean = d.mean().item<double>();
        double variance = d.var(unbiased: false).item<double>();
        Assert.True(Math.Abs(mean - mu) < 5 * s / Math.Sqrt(n), $"mean {mean} vs {mu} (s = {s})");
        Assert.True(Math.Abs((variance / (s * s)) - 1) < 5 * Math.Sqrt(2.0 / n), $"variance {variance} vs {s * s}");
    }

    [Fact]
    public void LogProbIsTheGaussianDensity()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(seed: 15);
        var xNext = randn([2, 3, 5], generator: gen);
        var mean = randn([2, 3, 5], generator: gen);
        const double s = 0.37;
        double[] xs = Doubles(xNext), ms = Doubles(mean);
        var perElement = Doubles(SdeStep.LogProbPerElement(xNext, mean, s));
        var perSample = Doubles(SdeStep.LogProb(xNext, mean, s));
        Assert.Equal(2, perSample.Length);
        for (int b = 0; b < 2; b++)
        {
            double sum = 0;
            for (int k = b * 15; k < (b + 1) * 15; k++)
            {
                double density = Math.Exp(-Math.Pow(xs[k] - ms[k], 2) / (2 * s * s)) / (s * Math.Sqrt(2 * Math.PI));
                Assert.Equal(Math.Log(density), perElement[k], 10);
                sum += Math.Log(density);
            }

            Assert.Equal(sum / 15, perSample[b], 10);
        }
    }

    [Fact]
    public void SampledStepStoresItsNoiseAndLogProb()
    {
        using var scope = NewDisposeScope();
        var x = randn([2, 4, 6], generator: new Generator(seed: 16));
        var v = Velocity(x, 0.5f);
        var c = SdeStep.Coefficients(SdeKind.Sde, Schedule, 1, A);
        var r = SdeStep.Sample(x, v, c, new Generator(seed: 17));
        Assert.True(r.XNext.allclose(r.Mean + (r.Eps * (float)c.Std), atol: 1e-6));
        Assert.Equal(ScalarType.Float32, r.XNext.dtype);
        Assert.Equal(ScalarType.Float64, r.LogProb.dtype);
        // log p = mean(-eps^2 / 2) - log s - log sqrt(2 pi), up to float32 rounding of x'
        var expected = r.Eps.to(ScalarType.Float64).square().mean([1, 2]).mul(-0.5).sub(Math.Log(c.Std) + SdeStep.LogSqrtTwoPi);
        Assert.True(r.LogProb.allclose(expected, atol: 1e-5));
        // the same generator seed gives the same noise
        var again = SdeStep.Sample(x, v, c, new Generator(seed: 17));
        Assert.True(again.XNext.Identical(r.XNext));
    }

    [Fact]
    public void LastStepIsNeverAnSdeStep()
    {
        int last = Schedule.Steps - 1;
        Assert.Equal(0.0, Schedule.SigmaNext(last));
        Assert.Throws<ArgumentException>(() => SdeStep.Coefficients(SdeKind.Sde, Schedule, last, A));
        Assert.Throws<ArgumentException>(() => SdeStep.Coefficients(SdeKind.Cps, Schedule, last, A));
        Assert.False(SdeSampling.IsSdeStep(Schedule, new SdeWindow(0, Schedule.Steps), A, last));
        Assert.True(SdeSampling.IsSdeStep(Schedule, new SdeWindow(0, Schedule.Steps), A, last - 1));

        using var scope = NewDisposeScope();
        var x = randn([1, 8], generator: new Generator(seed: 18));
        using var run = SdeSampling.Sample(x, Schedule, Velocity, new SdeWindow(8, 2), A, new Generator(seed: 19));
        Assert.Equal([8], run.Transitions.Select(t => t.Step));
    }

    [Fact]
    public void WindowStartIsUniformOverTheStatedIntegerRange()
    {
        Assert.Equal(3, SdeWindow.MaxStart(10, 2));
        Assert.Equal(3, SdeWindow.MaxStart(11, 2));
        Assert.Equal(0, SdeWindow.MaxStart(4, 2));
        Assert.Throws<ArgumentException>(() => SdeWindow.Draw(3, new Random(1), 2));

        var rng = new Random(42);
        var counts = new int[4];
        for (int i = 0; i < 4000; i++)
        {
            var w = SdeWindow.Draw(10, rng);
            Assert.Equal(2, w.Size);
            Assert.InRange(w.Start, 0, 3);
            counts[w.Start]++;
        }

        // every start is reached, about equally often (1000 +- 5 sigma)
        Assert.All(counts, c => Assert.InRange(c, 850, 1150));

        static int[] Starts(int seed)
        {
            var r = new Random(seed);
            return Enumerable.Range(0, 50).Select(_ => SdeWindow.Draw(20, r).Start).ToArray();
        }

        Assert.Equal(Starts(7), Starts(7));
        Assert.NotEqual(Starts(7), Starts(8));
        Assert.Equal(0, SdeWindow.Draw(4, new Random(5)).Start);
    }

    [Fact]
    public void SamplerStoresWindowStepsAndIsEulerElsewhere()
    {
        using var scope = NewDisposeScope();
        var x = randn([2, 3, 4], generator: new Generator(seed: 20));
        var euler = EulerSampler.Instance.Sample(x, Schedule, Velocity);
        using (var none = SdeSampling.Sample(x, Schedule, Velocity, SdeWindow.None, A, new Generator(seed: 1)))
        {
            Assert.Empty(none.Transitions);
            Assert.True(none.Final.Identical(euler));
        }

        using (var zero = SdeSampling.Sample(x, Schedule, Velocity, new SdeWindow(0, 10), 0.0, new Generator(seed: 1)))
        {
            Assert.Empty(zero.Transitions);
            Assert.True(zero.Final.Identical(euler));
        }

        using var run = SdeSampling.Sample(x, Schedule, Velocity, new SdeWindow(2, 2), A, new Generator(seed: 21));
        Assert.Equal([2, 3], run.Transitions.Select(t => t.Step));
        Assert.False(run.Final.allclose(euler, atol: 1e-3));
        var t0 = run.Transitions[0];
        var t1 = run.Transitions[1];
        Assert.True(t0.XNext.Identical(t1.X));
        Assert.Equal(Schedule.Sigma(2), t0.Sigma);
        Assert.Equal(Schedule.SigmaNext(2), t0.SigmaNext);
        Assert.Equal(SdeStep.Coefficients(SdeKind.Sde, Schedule, 3, A), t1.Coefficients);

        // The ODE steps before the window are Euler's: x_2 is two Euler steps from x.
        var x2 = EulerSampler.Instance.Step(Velocity, EulerSampler.Instance.Step(Velocity, x, Schedule.Sigma(0), Schedule.SigmaNext(0)), Schedule.Sigma(1), Schedule.SigmaNext(1));
        Assert.True(t0.X.Identical(x2));

        // On-policy: recomputing mean and log p from the stored step with the same velocity reproduces them exactly.
        foreach (var t in run.Transitions)
        {
            var mu = SdeStep.Mean(t.X, Velocity(t.X, (float)t.Sigma), t.Coefficients);
            Assert.True(mu.Identical(t.MeanOld));
            Assert.True(SdeStep.LogProb(t.XNext, mu, t.Std).Identical(t.LogProbOld));
            Assert.True(t.XNext.allclose(t.MeanOld + (t.Eps * (float)t.Std), atol: 1e-6));
            Assert.Equal([2L], t.LogProbOld.shape);
        }

        // Determinism: the same seed gives the same run, another seed a different one.
        using var same = SdeSampling.Sample(x, Schedule, Velocity, new SdeWindow(2, 2), A, new Generator(seed: 21));
        Assert.True(same.Final.Identical(run.Final));
        Assert.True(same.Transitions[1].Eps.Identical(t1.Eps));
        using var other = SdeSampling.Sample(x, Schedule, Velocity, new SdeWindow(2, 2), A, new Generator(seed: 22));
        Assert.False(other.Final.allclose(run.Final, atol: 1e-3));
    }

    [Fact]
    public void TransitionsOfOneStepConcatenateAcrossCandidates()
    {
        using var scope = NewDisposeScope();
        var window = new SdeWindow(1, 2);
        var a = SdeSampling.Sample(randn([1, 6], generator: new Generator(seed: 30)), Schedule, Velocity, window, A, new Generator(seed: 31));
        var b = SdeSampling.Sample(randn([2, 6], generator: new Generator(seed: 32)), Schedule, Velocity, window, A, new Generator(seed: 33));
        var joined = SdeTransition.Concat([a.Transitions[0], b.Transitions[0]]);
        Assert.Equal(3, joined.BatchSize);
        Assert.Equal([3L], joined.LogProbOld.shape);
        Assert.True(joined.Slice(1, 2).XNext.Identical(b.Transitions[0].XNext));
        Assert.True(joined.Slice(0, 1).Eps.Identical(a.Transitions[0].Eps));
        Assert.Throws<ArgumentException>(() => SdeTransition.Concat([a.Transitions[0], b.Transitions[1]]));
    }
}

internal static class SdeTensorAssert
{
    /// <summary>Same shape, dtype and bit-identical values (NaN-free inputs).</summary>
    public static bool Identical(this Tensor a, Tensor b) =>
        a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();
}
