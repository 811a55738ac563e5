using StableLayers.Judges.Rubric;
using Xunit.Abstractions;

namespace StableLayers.Judges.Tests;

public class RubricExplore(ITestOutputHelper output)
{
    [Fact]
    public void Dump()
    {
        var ids = Samples.RealIds.Select(id => ("real:" + id, Samples.Real(id))).Concat(Enumerable.Range(0, 8).Select(i => ("synth:" + i, Samples.Synth(i))));
        foreach (var (id, (gt, input)) in ids)
        {
            output.WriteLine($"{id} N={gt.Count} {gt.Width}x{gt.Height}");
            foreach (var name in new[] { "gt" }.Concat(Degradations.Names))
            {
                var c = name == "gt" ? gt : Degradations.Apply(name, gt);
                var b = RubricCriteria.Evaluate(input, c);
                var s = b.Scores;
                output.WriteLine($"  {name,-12} S={s.SemanticSeparation:F3} A={s.AlphaCleanliness:F3} B={s.BackgroundInpainting:F3} F={s.FeatureDistribution:F3} C={s.ContentValidity:F3} R={RewardWeights.Equal.Reward(s):F3} | {b.Separation} {b.Alpha} {b.Background} {b.Validity.ReconstructionL1:F4}");
            }
        }
    }
}
