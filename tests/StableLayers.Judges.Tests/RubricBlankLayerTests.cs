using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges.Rubric;
using StableLayers.Metrics;

namespace StableLayers.Judges.Tests;

/// <summary>
/// A requested layer left blank must never be worth more than a poor attempt at the object it should hold, where
/// ground truth agrees. rubric/v2 averaged its per-layer terms over the layers that show something, so a blank layer
/// was free there (GRPO on photos drifted into blank layers, 0.20 -> 0.35 per decomposition). The poor-vs-emptied
/// cases also pass on v2 (its fill ramp and reconstruction term outweigh the rest on these samples) and guard the
/// ranking; the all-blank case fails on v2, which gave an all-blank foreground a perfect matte score.
/// </summary>
public class RubricBlankLayerTests
{
    public static TheoryData<int> SynthIndices() => [.. Enumerable.Range(0, 12)];

    public static TheoryData<string> RealIds() => [.. Samples.RealIds];

    [Theory]
    [MemberData(nameof(SynthIndices))]
    public void SynthPoorLayerBeatsTheSameLayerEmptied(int index)
    {
        var (gt, input) = Samples.Synth(index);
        Check(gt, input);
    }

    [Theory]
    [MemberData(nameof(RealIds))]
    public void RealPoorLayerBeatsTheSameLayerEmptied(string id)
    {
        var (gt, input) = Samples.Real(id);
        Check(gt, input);
    }

    [Fact]
    public void AllBlankForegroundHasNoCleanMatteAndSeparatesNothing()
    {
        var (gt, input) = Samples.Synth(3);
        var layers = gt.Images.Select(i => i.Clone()).ToArray();
        for (int k = 1; k < layers.Length; k++)
        {
            layers[k] = new RgbaImage(gt.Width, gt.Height);
        }

        var b = RubricCriteria.Evaluate(input, new LayerStack(layers));
        Assert.Equal(0, b.Alpha.Score);
        Assert.Equal(0, b.Separation.Score);
        Assert.Equal(0, b.Distribution.Score);
    }

    /// <summary>
    /// The heaviest foreground layer made poor (alpha x 0.75, colour pulled 40% towards mid-grey, like the tiny base's
    /// soft, mis-coloured blobs) against the same decomposition with that layer emptied. Ground truth must agree the
    /// poor layer is better (best-match L1), and so must the reward.
    /// </summary>
    private static void Check(LayerStack gt, RgbaImage input)
    {
        int k = Degradations.HeaviestForeground(gt);
        var poorLayers = gt.Images.Select(i => i.Clone()).ToArray();
        var p = poorLayers[k].Pixels;
        for (int i = 0; i < p.Length; i += 4)
        {
            for (int c = 0; c < 3; c++)
            {
                p[i + c] = (byte)Math.Round(p[i + c] + (0.4 * (128 - p[i + c])));
            }

            p[i + 3] = (byte)Math.Round(p[i + 3] * 0.75);
        }

        var poor = new LayerStack(poorLayers);
        var emptiedLayers = gt.Images.Select(i => i.Clone()).ToArray();
        emptiedLayers[k] = new RgbaImage(gt.Width, gt.Height);
        var emptied = new LayerStack(emptiedLayers);

        var gtPlanes = gt.Images.Select(LayerPlanes.From).ToArray();
        double bmPoor = StackMetrics.BestMatch(poor.Images.Select(LayerPlanes.From).ToArray(), gtPlanes).Mean;
        double bmEmptied = StackMetrics.BestMatch(emptied.Images.Select(LayerPlanes.From).ToArray(), gtPlanes).Mean;
        Assert.True(bmPoor < bmEmptied, $"premise: best-match poor {bmPoor:F4} >= emptied {bmEmptied:F4}");

        var j = new RubricJudge().Judge(new JudgeGroup("t", input, [poor, emptied]));
        Assert.All(j.Candidates, c => Assert.False(c.Failed, c.Error));
        Assert.True(
            j.Candidates[0].Reward > j.Candidates[1].Reward,
            $"reward poor {j.Candidates[0].Reward:F4} <= emptied {j.Candidates[1].Reward:F4} (best-match {bmPoor:F4} vs {bmEmptied:F4})");
    }
}
