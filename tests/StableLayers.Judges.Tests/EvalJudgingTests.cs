using StableLayers.Core.Formats;
using StableLayers.Judges.Rubric;
using StableLayers.Metrics.Evaluation;
using StableLayers.TestSupport;

namespace StableLayers.Judges.Tests;

/// <summary>eval --judge: each sample judged alone against the image that was decomposed, the judge's unrounded scores kept.</summary>
public class EvalJudgingTests
{
    [Fact]
    public async Task JudgesEachPredictionAgainstItsInputAndKeepsFailuresNull()
    {
        using var tmp = new TempDir();
        string pred = Path.Combine(tmp.Path, "pred");
        var (a, aInput) = Samples.Synth(1, 64);
        var (b, _) = Samples.Synth(2, 64);
        var (_, other) = Samples.Synth(3, 64);
        LayeredFolder.Write(Path.Combine(pred, "a"), a, input: aInput);
        LayeredFolder.Write(Path.Combine(pred, "b"), b, input: other); // its input is not its own composite
        LayeredFolder.Write(Path.Combine(pred, "c"), b);                // no input.png: nothing to judge against
        var judge = new RubricJudge();
        var (report, failures) = await EvalJudging.AddScoresAsync(EvalRunner.Run(pred, null), pred, null, judge);

        var byId = report.Samples.ToDictionary(s => s.Id);
        Assert.Equal(ExpectedReward(aInput, a), byId["a"].JudgeReward);
        Assert.Equal(RubricCriteria.Evaluate(aInput, a).Scores.BackgroundInpainting, byId["a"].JudgeBackgroundInpainting);
        Assert.Equal(ExpectedReward(other, b), byId["b"].JudgeReward);
        Assert.Equal(RubricCriteria.Evaluate(other, b).Scores.BackgroundInpainting, byId["b"].JudgeBackgroundInpainting);
        Assert.Null(byId["c"].JudgeReward);
        Assert.Null(byId["c"].JudgeBackgroundInpainting);
        var failure = Assert.Single(failures);
        Assert.Equal("c", failure.Id);
        Assert.Contains("no input image", failure.Error);

        // The judge's numbers are aggregated like every metric (the failed sample left out, not counted as 0).
        Assert.Equal((byId["a"].JudgeReward!.Value + byId["b"].JudgeReward!.Value) / 2, report.Aggregate.All["judge_reward"], 12);
        Assert.True(report.AggregateCi95.All.ContainsKey("judge_background_inpainting"));

        // The test can tell the input from the composite, and the unrounded score from the phase-1 bucket.
        Assert.NotEqual(ExpectedReward(b.FlattenOnWhite(), b), byId["b"].JudgeReward);
        Assert.Contains(new[] { byId["a"], byId["b"] }, s => Math.Abs((s.JudgeBackgroundInpainting!.Value * 5) - Math.Round(s.JudgeBackgroundInpainting.Value * 5)) > 1e-6);
    }

    [Fact]
    public async Task WithGroundTruthTheGroundTruthCompositeIsTheInput()
    {
        using var tmp = new TempDir();
        string pred = Path.Combine(tmp.Path, "pred"), gt = Path.Combine(tmp.Path, "gt");
        var (b, bInput) = Samples.Synth(2, 64);
        var (_, other) = Samples.Synth(3, 64);
        LayeredFolder.Write(Path.Combine(gt, "b"), b);
        LayeredFolder.Write(Path.Combine(pred, "b"), b, input: other);
        var (report, failures) = await EvalJudging.AddScoresAsync(EvalRunner.Run(pred, gt), pred, gt, new RubricJudge());
        Assert.Empty(failures);
        Assert.Equal(ExpectedReward(bInput, b), report.Samples[0].JudgeReward);
        Assert.NotEqual(ExpectedReward(other, b), report.Samples[0].JudgeReward);
    }

    private static double? ExpectedReward(Core.Imaging.RgbaImage input, Core.Layers.LayerStack stack) =>
        new RubricJudge().Judge(new JudgeGroup("x", input, [stack])).Candidates[0].Reward;
}
