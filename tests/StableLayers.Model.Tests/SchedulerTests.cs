using System.Text.Json;
using StableLayers.Model.Schedulers;
using StableLayers.TestSupport;

namespace StableLayers.Model.Tests;

public class SchedulerTests
{
    private static JsonElement Golden { get; } =
        JsonDocument.Parse(File.ReadAllText(Path.Combine(TestData.GoldenDir, "scheduler_golden.json"))).RootElement;

    [Fact]
    public void SchedulesMatchIndependentDiffusersReference()
    {
        int cases = 0;
        foreach (var c in Golden.GetProperty("schedules").EnumerateArray())
        {
            int steps = c.GetProperty("steps").GetInt32();
            double mu = c.GetProperty("mu").GetDouble();
            var st = c.GetProperty("shift_terminal");
            double? terminal = st.ValueKind == JsonValueKind.Null ? null : st.GetDouble();
            var expected = c.GetProperty("sigmas").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            var expectedT = c.GetProperty("timesteps").EnumerateArray().Select(e => e.GetDouble()).ToArray();

            var schedule = new FlowMatchScheduler(mu, terminal).Schedule(steps);

            Assert.Equal(steps, schedule.Steps);
            Assert.Equal(expected.Length, schedule.Sigmas.Length);
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.True(Math.Abs(expected[i] - schedule.Sigmas[i]) < 1e-6, $"steps {steps} mu {mu} terminal {terminal}: sigma[{i}] {schedule.Sigmas[i]} vs {expected[i]}");
            }

            var timesteps = schedule.Timesteps();
            for (int i = 0; i < expectedT.Length; i++)
            {
                Assert.True(Math.Abs(expectedT[i] - timesteps[i]) < 1e-3, $"timestep[{i}]");
            }

            cases++;
        }

        Assert.Equal(30, cases);
    }

    [Theory]
    [InlineData(1600, 2.5)] // 640 x 640: 40 x 40 tokens
    [InlineData(4096, 4.0)] // 1024 x 1024: 64 x 64 tokens
    [InlineData(256, 1.0)]
    public void MuIsSquareRootOfConditionTokensOver256(int tokens, double mu) =>
        Assert.Equal(mu, FlowMatchScheduler.MuForConditionTokens(tokens), 12);

    [Theory]
    [InlineData(2)]
    [InlineData(10)]
    [InlineData(50)]
    public void StretchedScheduleStartsAtOneEndsAtTerminalThenZeroAndDecreases(int steps)
    {
        var s = FlowMatchScheduler.ForConditionTokens(1600).Schedule(steps);
        Assert.Equal(1.0, s.Sigmas[0], 12);
        Assert.Equal(0.02, s.Sigmas[^2], 12);
        Assert.Equal(0.0, s.Sigmas[^1]);
        for (int i = 0; i < steps; i++)
        {
            Assert.True(s.Dt(i) < 0, $"step {i} must decrease sigma");
        }
    }

    [Fact]
    public void SingleStepWithTerminalIsOneToZeroInsteadOfNaN()
    {
        var s = new FlowMatchScheduler(2.5).Schedule(1);
        Assert.Equal([1.0, 0.0], s.Sigmas);
    }

    [Fact]
    public void Float32ViewsAndTimestepsAreConsistent()
    {
        var s = new FlowMatchScheduler(4.0, null).Schedule(20);
        Assert.Equal(21, s.SigmasFloat32().Length);
        Assert.Equal(20, s.TimestepsFloat32().Length);
        Assert.Equal((float)(s.Sigmas[3] * 1000), s.TimestepsFloat32()[3]);
        Assert.Throws<ArgumentOutOfRangeException>(() => s.Sigma(20));
        Assert.Throws<InvalidOperationException>(() => new FlowMatchScheduler(1.0, 1.5).Schedule(4));
    }

    [Fact]
    public void LargerMuKeepsMoreStepsAtHighNoise()
    {
        var low = new FlowMatchScheduler(1.0, null).Schedule(10);
        var high = new FlowMatchScheduler(4.0, null).Schedule(10);
        for (int i = 1; i < 10; i++)
        {
            Assert.True(high.Sigmas[i] > low.Sigmas[i]);
        }
    }
}
