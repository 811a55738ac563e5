using StableLayers.Model.Schedulers;
using StableLayers.Training.Grpo;
using static TorchSharp.torch;

namespace StableLayers.Training.Tests;

public class GrpoAdvantageTests
{
    private static readonly double?[][] Rewards =
    [
        [1.0, 2.0, 3.0, null], // one failure, three remain
        [5.0, 5.0, 5.0], // zero spread
        [null, 4.0, null], // one left: dropped
        [0.0, 10.0],
    ];

    [Fact]
    public void PerGroupAdvantagesMatchHandValues()
    {
        var r = GrpoStep.Advantages(Rewards);
        double s1 = Math.Sqrt(2.0 / 3.0);
        Assert.Equal(-1 / (s1 + 1e-4), r.Advantages[0][0]!.Value, 12);
        Assert.Equal(0.0, r.Advantages[0][1]!.Value, 12);
        Assert.Equal(1 / (s1 + 1e-4), r.Advantages[0][2]!.Value, 12);
        Assert.Null(r.Advantages[0][3]);
        Assert.Equal([0.0, 0.0, 0.0], r.Advantages[1].Select(a => a!.Value));
        Assert.All(r.Advantages[2], a => Assert.Null(a));
        Assert.Equal(-5 / 5.0001, r.Advantages[3][0]!.Value, 12);
        Assert.Equal(5 / 5.0001, r.Advantages[3][1]!.Value, 12);

        Assert.Equal(3, r.UsedGroups);
        Assert.Equal(1, r.DroppedGroups);
        Assert.Equal(3, r.FailedCandidates);
        Assert.Equal(1, r.ZeroStdGroups);
        Assert.Equal(1.0 / 3.0, r.ZeroStdRatio, 12);
        Assert.Equal((s1 + 0 + 5) / 3, r.MeanGroupStd, 12);
    }

    [Fact]
    public void GlobalStdUsesEveryKeptReward()
    {
        var r = GrpoStep.Advantages(Rewards, new AdvantageOptions(GlobalStd: true));
        // kept rewards 1 2 3 5 5 5 0 10: mean 31/8, mean of squares 189/8
        double std = Math.Sqrt((189.0 / 8) - ((31.0 / 8) * (31.0 / 8)));
        Assert.Equal(-1 / (std + 1e-4), r.Advantages[0][0]!.Value, 12);
        Assert.Equal(5 / (std + 1e-4), r.Advantages[3][1]!.Value, 12);
        Assert.Equal([0.0, 0.0, 0.0], r.Advantages[1].Select(a => a!.Value));
        Assert.Equal(1, r.ZeroStdGroups);
    }

    [Fact]
    public void AdvantagesAreClamped()
    {
        // 30 zeros and a one: the outlier's advantage is (30/31) / (sqrt(30)/31) = sqrt(30) ~ 5.48 > 5.
        var group = Enumerable.Repeat<double?>(0.0, 30).Append(1.0).ToArray();
        var r = GrpoStep.Advantages([group]);
        double std = Math.Sqrt(30) / 31;
        Assert.Equal(5.0, r.Advantages[0][30]!.Value);
        Assert.Equal(-(1.0 / 31) / (std + 1e-4), r.Advantages[0][0]!.Value, 12);
        var tight = GrpoStep.Advantages([group], new AdvantageOptions(Clamp: 0.1));
        Assert.Equal(-0.1, tight.Advantages[0][0]!.Value);
        Assert.Equal(0.1, tight.Advantages[0][30]!.Value);
    }

    [Fact]
    public void EqualRewardsGiveExactZeroEvenWhenTheirMeanRoundsAndNanIsRejected()
    {
        // 0.1 * 3 / 3 is not 0.1 in binary: the spread check is max == min, not std == 0.
        var r = GrpoStep.Advantages([[0.1, 0.1, 0.1], [null, null, null]]);
        Assert.All(r.Advantages[0], a => Assert.Equal(0.0, a!.Value));
        Assert.Equal(1.0, r.ZeroStdRatio);
        Assert.Equal(1, r.DroppedGroups);
        Assert.Equal(3, r.FailedCandidates);
        Assert.Throws<ArgumentException>(() => GrpoStep.Advantages([[1.0, double.NaN]]));
    }
}

public class GrpoRatioTests
{
    private static (Tensor MuOld, Tensor MuTheta, Tensor Eps, Tensor XNext) Step(long batch, long d, double s, float dmuScale, ulong seed)
    {
        var gen = new Generator(seed: seed);
        var muOld = randn([batch, d], generator: gen);
        var muTheta = muOld.add(randn([batch, d], generator: gen), dmuScale);
        var eps = randn([batch, d], generator: gen);
        var xNext = muOld.add(eps, (float)s);
        return (muOld, muTheta, eps, xNext);
    }

    [Fact]
    public void RatioIsExactlyOneWhenTheMeansAgreeInEveryMode()
    {
        using var scope = NewDisposeScope();
        var (muOld, _, eps, xNext) = Step(3, 1000, 0.3, 0f, 1);
        var muTheta = muOld.clone().requires_grad_(true);
        foreach (var mode in Enum.GetValues<RatioMode>())
        {
            var logR = GrpoStep.LogRatio(mode, muTheta, muOld, xNext, 0.3, eps);
            Assert.Equal([3L], logR.shape);
            Assert.All(logR.detach().data<double>().ToArray(), v => Assert.Equal(0.0, v));
            Assert.All(logR.detach().exp().data<double>().ToArray(), v => Assert.Equal(1.0, v));
        }
    }

    [Fact]
    public void OnPolicyRatioFromAStoredSdeStepIsExactlyOne()
    {
        using var scope = NewDisposeScope();
        var schedule = FlowMatchScheduler.ForConditionTokens(1600).Schedule(10);
        static Tensor Velocity(Tensor x, float sigma) => x.mul(-0.3f).add(sigma);
        var x = randn([2, 4, 8], generator: new Generator(seed: 2));
        using var run = SdeSampling.Sample(x, schedule, Velocity, new SdeWindow(1, 2), 1.2, new Generator(seed: 3));
        foreach (var t in run.Transitions)
        {
            var muTheta = SdeStep.Mean(t.X, Velocity(t.X, (float)t.Sigma), t.Coefficients);
            foreach (var mode in Enum.GetValues<RatioMode>())
            {
                var logR = GrpoStep.LogRatio(mode, muTheta, t);
                Assert.All(logR.data<double>().ToArray(), v => Assert.Equal(0.0, v));
            }
        }
    }

    [Theory]
    [InlineData(1_000)]
    [InlineData(100_000)]
    public void SumRescaleStdIsTheRmsOfTheMeanChangeWhateverD(int d)
    {
        using var scope = NewDisposeScope();
        const int batch = 64;
        var gen = new Generator(seed: (ulong)d);
        var muOld = zeros([batch, d]);
        var muTheta = randn([batch, d], generator: gen).mul(0.01f);
        var eps = randn([batch, d], generator: gen);
        double rms = muTheta.to(ScalarType.Float64).square().mean().sqrt().item<double>();
        var sum = GrpoStep.LogRatio(RatioMode.SumRescale, muTheta, muOld, muOld, 0.3, eps);
        double std = sum.std(unbiased: false).item<double>();
        // 64 samples: the std estimate is within about 9% (1 sigma); allow 30%. The mean form would be 1/sqrt(D) of it.
        Assert.InRange(std / rms, 0.7, 1.3);
        Assert.InRange(Math.Abs(sum.mean().item<double>()) / rms, 0, 0.5);
        // The mean form is 1/sqrt(D) smaller; exponent 1 recovers it.
        var guard = GrpoStep.LogRatio(RatioMode.GuardMean, muTheta, muOld, muOld, 0.3, eps);
        Assert.InRange(guard.std(unbiased: false).item<double>() * Math.Sqrt(d) / rms, 0.7, 1.3);
        var exponentOne = GrpoStep.LogRatio(RatioMode.SumRescale, muTheta, muOld, muOld, 0.3, eps, exponent: 1.0);
        Assert.True(exponentOne.allclose(guard, rtol: 1e-12, atol: 0));
    }

    [Fact]
    public void GuardMeanEqualsTheLongWayInFloat64()
    {
        using var scope = NewDisposeScope();
        const double s = 0.3;
        var (muOld, muTheta, eps, xNext) = Step(4, 2000, s, 0.02f, 5);
        var guard = GrpoStep.LogRatio(RatioMode.GuardMean, muTheta, muOld, xNext, s, eps).data<double>().ToArray();

        // s * (mean log p_theta - mean log p_old) + mean(dmu^2) / (2 s), element by element in double.
        double[] x = xNext.to(ScalarType.Float64).data<double>().ToArray();
        double[] mt = muTheta.to(ScalarType.Float64).data<double>().ToArray();
        double[] mo = muOld.to(ScalarType.Float64).data<double>().ToArray();
        double c = Math.Log(s) + (0.5 * Math.Log(2 * Math.PI));
        for (int b = 0; b < 4; b++)
        {
            double lpTheta = 0, lpOld = 0, dmu2 = 0;
            for (int k = b * 2000; k < (b + 1) * 2000; k++)
            {
                lpTheta += (-(x[k] - mt[k]) * (x[k] - mt[k]) / (2 * s * s)) - c;
                lpOld += (-(x[k] - mo[k]) * (x[k] - mo[k]) / (2 * s * s)) - c;
                dmu2 += (mt[k] - mo[k]) * (mt[k] - mo[k]);
            }

            double longWay = (s * ((lpTheta / 2000) - (lpOld / 2000))) + (dmu2 / 2000 / (2 * s));
            // The stored eps differs from (x' - mu_old) / s by x's float32 rounding (~1e-7 per element), ~1e-10 after the mean;
            // the values themselves are ~rms(dmu) / sqrt(D) = 0.02 / 45 ~ 5e-4.
            Assert.True(Math.Abs(guard[b] - longWay) < 2e-9, $"sample {b}: {guard[b]} vs {longWay}");
            Assert.True(Math.Abs(longWay) > 1e-5, "the check must not compare zeros");
        }
    }

    [Fact]
    public void PlainRatioIsThePerDimensionLogRatioMean()
    {
        // l_d = eps_d dmu_d / s - dmu_d^2 / (2 s^2): its mean is negative, the drift RatioNorm removes.
        using var scope = NewDisposeScope();
        const double s = 0.3;
        var (muOld, muTheta, eps, xNext) = Step(4, 5000, s, 0.05f, 6);
        var plain = GrpoStep.LogRatio(RatioMode.None, muTheta, muOld, xNext, s, eps);
        var e = xNext.to(ScalarType.Float64).sub(muOld.to(ScalarType.Float64)).div(s);
        var dmu = muTheta.to(ScalarType.Float64).sub(muOld.to(ScalarType.Float64));
        var expected = e.mul(dmu).div(s).sub(dmu.square().div(2 * s * s)).mean([1]);
        Assert.True(plain.allclose(expected, rtol: 1e-9, atol: 1e-12));
        Assert.True(plain.mean().item<double>() < -0.01);
    }
}

public class GrpoLossTests
{
    [Fact]
    public void ClippedSurrogateMatchesHandValues()
    {
        using var scope = NewDisposeScope();
        double[] r = [0.9, 1.0, 1.3, 1.05, 1.5, 0.5];
        double[] a = [1, -2, 0.5, -1, -1, 1];
        var logR = tensor(r.Select(v => Math.Log(v)).ToArray(), dtype: ScalarType.Float64).requires_grad_(true);
        var result = GrpoStep.Loss(logR, tensor(a), null, null, Coefficients, Settings(0.2));
        double[] stats = result.Stats.data<double>().ToArray();
        // per sample: -0.9, 2, -0.6 (clipped 1.2), 1.05, 1.5 (unclipped wins for A < 0), -0.5 (unclipped wins for A > 0)
        Assert.Equal(2.55 / 6, result.Total.item<double>(), 12);
        Assert.Equal(0.5, stats[0], 12);
        Assert.Equal(6.25 / 6, stats[1], 12);
        double mean = 6.25 / 6;
        Assert.Equal(Math.Sqrt(r.Sum(v => (v - mean) * (v - mean)) / 6), stats[2], 12);
        double logMean = r.Select(v => Math.Log(v)).Average();
        Assert.Equal(Math.Sqrt(r.Select(v => Math.Log(v)).Sum(v => (v - logMean) * (v - logMean)) / 6), stats[3], 12);
        Assert.Equal(0.5 * r.Select(v => Math.Log(v)).Average(v => v * v), stats[4], 12);
        Assert.Equal(0.0, result.KlPart.item<double>());

        // d L / d log r = -A r / B where the unclipped term is active, 0 where the clipped one is.
        result.Total.backward();
        var grad = logR.grad!.data<double>().ToArray();
        for (int i = 0; i < r.Length; i++)
        {
            double expected = i == 2 ? 0.0 : -a[i] * r[i] / 6;
            Assert.Equal(expected, grad[i], 12);
        }
    }

    [Fact]
    public void RatioOfOneGivesMinusTheMeanAdvantageAndNoClipping()
    {
        using var scope = NewDisposeScope();
        var result = GrpoStep.Loss(zeros(4, dtype: ScalarType.Float64), tensor(new[] { 1.0, -1.0, 2.0, 0.5 }), null, null, Coefficients, Settings(1e-6));
        Assert.Equal(-2.5 / 4, result.Total.item<double>(), 14);
        double[] stats = result.Stats.data<double>().ToArray();
        Assert.Equal(0.0, stats[0]);
        Assert.Equal(0.0, stats[3]);
    }

    [Fact]
    public void ReferenceKlStepWeightAndTotal()
    {
        using var scope = NewDisposeScope();
        var muTheta = tensor(new float[,] { { 1f, 2f }, { 0f, -1f } });
        var muRef = tensor(new float[,] { { 0.5f, 2f }, { 1f, -1f } });
        // mean of squared differences (0.25 + 0 + 1 + 0) / 4 = 0.3125, divided by 2 sigma_t^2 = 2 * 0.25
        var kl = GrpoStep.ReferenceKl(muTheta, muRef, 0.5);
        Assert.Equal(0.3125 / 0.5, kl.item<double>(), 12);
        Assert.Equal(0.0, GrpoStep.ReferenceKl(muTheta, muTheta.clone(), 0.5).item<double>());

        // sigma 0.8 -> 0.6 with a = 1.2: |dt| = 0.2, sigma_t = 1.2 sqrt(0.8 / (1 - 0.8)) = 2.4.
        var c = Coefficients;
        Assert.Equal(5.0, GrpoStep.InverseDtWeight(c), 10);
        Assert.Equal(2.4, c.SigmaT, 12);

        // log r = 0 (r = 1): policy = -mean(A) = -0.25; total = w (policy + beta kl) / terms with w = 1/|dt| = 5, 2 terms.
        var logR = zeros(2, dtype: ScalarType.Float64);
        var a = tensor(new[] { 0.5, 0.0 });
        Assert.Equal(-0.25, GrpoStep.Loss(logR, a, null, null, c, Settings(0.2)).Total.item<double>(), 14);
        var both = GrpoStep.Loss(logR, a, muTheta, muRef, c, Settings(0.2) with { KlBeta = 0.1, StepWeight = true }, terms: 2);
        double klValue = 0.3125 / (2 * 2.4 * 2.4);
        Assert.Equal(5.0 * (-0.25 + (0.1 * klValue)) / 2, both.Total.item<double>(), 12);
        Assert.Equal(klValue / 2, both.KlPart.item<double>(), 12);
        Assert.Throws<ArgumentNullException>(() => GrpoStep.Loss(logR, a, null, null, c, Settings(0.2) with { KlBeta = 0.1 }));
    }

    private static SdeCoefficients Coefficients => SdeStep.Coefficients(SdeKind.Sde, 0.8, 0.6, 1.2, 0.9);

    private static UpdateSettings Settings(double clipRange) => new(RatioMode.SumRescale, 0.5, clipRange, KlBeta: 0, StepWeight: false, GradClip: 1.0);
}
