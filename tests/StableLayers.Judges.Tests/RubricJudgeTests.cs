using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges.Rubric;

namespace StableLayers.Judges.Tests;

public class RubricJudgeTests
{
    [Fact]
    public void NameIsVersioned() => Assert.Equal("rubric/v3", new RubricJudge().Name);

    [Fact]
    public async Task SameGroupGivesIdenticalScoresOnAnyThreadCount()
    {
        var group = NearIdenticalGroup(2);
        var a = await new RubricJudge().JudgeAsync(group);
        var b = await new RubricJudge().JudgeAsync(group);
        var c = await new RubricJudge(maxDegreeOfParallelism: -1).JudgeAsync(group);
        foreach (var other in new[] { b, c })
        {
            for (int i = 0; i < a.Candidates.Count; i++)
            {
                Assert.Equal(a.Candidates[i].Phase1, other.Candidates[i].Phase1);
                Assert.Equal(a.Candidates[i].Calibrated, other.Candidates[i].Calibrated);
                Assert.Equal(a.Candidates[i].Reward, other.Candidates[i].Reward);
            }

            Assert.Equal(a.Diagnostics.TiesBefore, other.Diagnostics.TiesBefore);
            Assert.Equal(a.Diagnostics.TiesAfter, other.Diagnostics.TiesAfter);
        }
    }

    [Fact]
    public void BucketsTieNearIdenticalCandidatesAndCalibrationSeparatesThem()
    {
        var group = NearIdenticalGroup(3);
        var j = new RubricJudge().Judge(group);
        Assert.Equal(0, j.Diagnostics.Failures);
        Assert.True(j.Diagnostics.LatencyMs > 0);
        // Phase 1 is integer buckets: every criterion a multiple of 1/5.
        Assert.All(j.Candidates, c => Assert.All(c.Phase1!.ToArray(), v => Assert.Equal(Math.Round(v * 5), v * 5, 9)));
        Assert.Equal(GroupTies.Count(j.Candidates.Select(c => c.Phase1Reward)), j.Diagnostics.TiesBefore);
        Assert.Equal(GroupTies.Count(j.Rewards), j.Diagnostics.TiesAfter);
        Assert.True(
            j.Diagnostics.TiesBefore > j.Diagnostics.TiesAfter,
            $"ties before {j.Diagnostics.TiesBefore}, after {j.Diagnostics.TiesAfter}");
        Assert.Equal(0, j.Diagnostics.TiesAfter);
        // Calibrated values are the unrounded ones: bucketing them gives phase 1 back.
        Assert.All(j.Candidates, c => Assert.Equal(c.Phase1, c.Calibrated!.Bucketed()));
    }

    [Fact]
    public void WithoutCalibrationTheRewardIsPhaseOne()
    {
        var group = NearIdenticalGroup(4);
        var j = new RubricJudge(new JudgeOptions { Calibrate = false }).Judge(group);
        Assert.All(j.Candidates, c =>
        {
            Assert.Null(c.Calibrated);
            Assert.Equal(c.Phase1Reward, c.Reward);
        });
        Assert.Equal(j.Diagnostics.TiesBefore, j.Diagnostics.TiesAfter);
    }

    [Fact]
    public void RewardUsesTheConfiguredWeights()
    {
        var group = NearIdenticalGroup(5);
        var weights = new RewardWeights(0, 0, 0, 0, 1);
        var j = new RubricJudge(new JudgeOptions { Weights = weights }).Judge(group);
        Assert.All(j.Candidates, c => Assert.Equal(c.Calibrated!.ContentValidity, c.Reward!.Value, 12));
    }

    [Fact]
    public void BadCandidatesFailAloneWithAClearMessage()
    {
        var (gt, input) = Samples.Synth(3, size: 64);
        var wrongSize = new LayerStack(RgbaImage.Filled(32, 64, 255, 255, 255, 255));
        var group = new JudgeGroup("g7", input, [gt, wrongSize, null!, Degradations.Blanked(gt)]);
        var j = new RubricJudge().Judge(group);
        Assert.Equal(2, j.Diagnostics.Failures);
        Assert.Equal(2, j.Diagnostics.Usage.Failures);
        Assert.False(j.Candidates[0].Failed);
        Assert.False(j.Candidates[3].Failed);
        Assert.True(j.Candidates[1].Failed);
        Assert.Contains("candidate B is 32x64, the input is 64x64", j.Candidates[1].Error, StringComparison.Ordinal);
        Assert.True(j.Candidates[2].Failed);
        Assert.Contains("candidate C has no layers", j.Candidates[2].Error, StringComparison.Ordinal);
        Assert.Null(j.Rewards[1]);
        Assert.Null(j.Candidates[1].Phase1);

        // The others score exactly as they do in a group without the bad candidates.
        var alone = new RubricJudge().Judge(new JudgeGroup("g7", input, [gt, Degradations.Blanked(gt)]));
        Assert.Equal(alone.Candidates[0].Calibrated, j.Candidates[0].Calibrated);
        Assert.Equal(alone.Candidates[1].Calibrated, j.Candidates[3].Calibrated);
        Assert.True(j.Candidates[0].Reward > j.Candidates[3].Reward);
    }

    [Fact]
    public void AnEmptyGroupIsRejected()
    {
        var (_, input) = Samples.Synth(0, size: 32);
        Assert.Throws<ArgumentException>(() => new RubricJudge().Judge(new JudgeGroup("empty", input, [])));
    }

    [Fact]
    public void JudgementIsAboutPixelsNotLayerNames()
    {
        var (gt, input) = Samples.Synth(2, size: 64);
        var renamed = new LayerStack(gt.Layers.Select((l, i) => new Layer($"other {i}", l.Image)).ToArray());
        var j = new RubricJudge().Judge(new JudgeGroup("n", input, [gt, renamed]));
        Assert.Equal(j.Candidates[0].Calibrated, j.Candidates[1].Calibrated);
        Assert.Equal(1, j.Diagnostics.TiesAfter);
    }

    /// <summary>Ground truth and copies that differ by one or two pixels of shift or a few faint pixels: phase-1 buckets cannot tell them apart.</summary>
    private static JudgeGroup NearIdenticalGroup(int index)
    {
        var (gt, input) = Samples.Synth(index + 8, size: 96);
        int top = gt.Count - 1;
        LayerStack Replace(RgbaImage img)
        {
            var layers = gt.Images.ToArray();
            layers[top] = img;
            return new LayerStack(layers);
        }

        var candidates = new List<LayerStack>
        {
            gt,
            Replace(Degradations.Shift(gt[top], 1, 0)),
            Replace(Degradations.Shift(gt[top], 0, 1)),
            Replace(Degradations.Shift(gt[top], 1, 1)),
            Replace(Degradations.Shift(gt[top], 2, 0)),
            Mix(gt, Degradations.Hazed(gt, seed: index), 0.02, index),
        };
        return new JudgeGroup($"near{index}", input, candidates);
    }

    /// <summary>Ground truth with a small share of its pixels taken from another stack.</summary>
    private static LayerStack Mix(LayerStack a, LayerStack b, double share, int seed)
    {
        var rng = new Random(seed);
        var layers = a.Images.Select(i => i.Clone()).ToArray();
        for (int k = 0; k < layers.Length; k++)
        {
            for (int i = 0; i < layers[k].Pixels.Length; i += 4)
            {
                if (rng.NextDouble() < share)
                {
                    Array.Copy(b[k].Pixels, i, layers[k].Pixels, i, 4);
                }
            }
        }

        return new LayerStack(layers);
    }
}
