using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges.Rubric;

namespace StableLayers.Judges.Tests;

/// <summary>Ground truth must beat each degraded variant, on the reward and on the criterion the degradation targets.</summary>
public class RubricDegradationTests
{
    public static TheoryData<string, string> RealCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var id in Samples.RealIds)
        {
            foreach (var d in Degradations.Names)
            {
                data.Add(id, d);
            }
        }

        return data;
    }

    public static TheoryData<int, string> SynthCases()
    {
        var data = new TheoryData<int, string>();
        for (int i = 0; i < 12; i++)
        {
            foreach (var d in Degradations.Names)
            {
                data.Add(i, d);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(RealCases))]
    public void RealGroundTruthBeatsDegradation(string id, string degradation)
    {
        var (gt, input) = Samples.Real(id);
        Check(gt, input, degradation);
    }

    [Theory]
    [MemberData(nameof(SynthCases))]
    public void SynthGroundTruthBeatsDegradation(int index, string degradation)
    {
        var (gt, input) = Samples.Synth(index);
        Check(gt, input, degradation);
    }

    /// <summary>The criterion each degradation is built to hurt.</summary>
    public static Criterion Target(string degradation) => degradation switch
    {
        "merged" or "blanked" => Criterion.FeatureDistribution,
        "glazed" or "shifted" => Criterion.ContentValidity,
        "speckled" or "hazed" => Criterion.AlphaCleanliness,
        "uninpainted" => Criterion.BackgroundInpainting,
        _ => throw new ArgumentOutOfRangeException(nameof(degradation)),
    };

    private static void Check(LayerStack gt, RgbaImage input, string degradation)
    {
        if (!Degradations.Applies(degradation, gt))
        {
            return; // e.g. noise on a sample whose foreground is faint everywhere: nothing to degrade
        }

        var bad = Degradations.Apply(degradation, gt);
        var judgement = new RubricJudge().Judge(new JudgeGroup("t", input, [gt, bad]));
        Assert.All(judgement.Candidates, c => Assert.False(c.Failed, c.Error));
        var (good, worse) = (judgement.Candidates[0], judgement.Candidates[1]);
        Assert.True(good.Reward > worse.Reward, $"{degradation}: reward gt {good.Reward:F4} <= degraded {worse.Reward:F4}");
        var c = Target(degradation);
        Assert.True(
            good.Calibrated![c] > worse.Calibrated![c],
            $"{degradation}: {Criteria.Key(c)} gt {good.Calibrated[c]:F4} <= degraded {worse.Calibrated[c]:F4}");
    }
}
