using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges.Rubric;
using StableLayers.Metrics;
using Xunit.Abstractions;

namespace StableLayers.Judges.Tests;

/// <summary>
/// Rubric reward vs ground-truth metrics over ground truth and its degraded variants. Prints the Spearman table
/// (run with <c>--filter RubricAgreementReport --logger "console;verbosity=detailed"</c>) and checks the signs a
/// useful judge must have.
/// </summary>
public class RubricAgreementReport(ITestOutputHelper output)
{
    [Fact]
    public void RealPsdDev()
    {
        var rows = Study(Samples.RealIds.Select(id => (id, Samples.Real(id))));
        Report("real-psd-dev", rows);
    }

    [Fact]
    public void Synth()
    {
        var rows = Study(Enumerable.Range(0, 16).Select(i => ($"synth{i}", Samples.Synth(i))));
        Report("synth 128 px (16 samples)", rows);
    }

    private readonly List<string> skipped = [];

    private List<JudgedSample> Study(IEnumerable<(string Id, (LayerStack Gt, RgbaImage Input) Sample)> samples)
    {
        var rows = new List<JudgedSample>();
        var judge = new RubricJudge(maxDegreeOfParallelism: -1);
        foreach (var (id, (gt, input)) in samples)
        {
            skipped.AddRange(Degradations.Names.Where(d => !Degradations.Applies(d, gt)).Select(d => $"{id}/{d}"));
            var names = new[] { "gt" }.Concat(Degradations.Names.Where(d => Degradations.Applies(d, gt))).ToArray();
            var candidates = names.Select(n => n == "gt" ? gt : Degradations.Apply(n, gt)).ToArray();
            var judgement = judge.Judge(new JudgeGroup(id, input, candidates));
            for (int i = 0; i < candidates.Length; i++)
            {
                string rowId = $"{id}/{names[i]}";
                var metrics = DecompositionEvaluator.Evaluate(rowId, candidates[i], gt, input);
                rows.Add(JudgedSample.From(rowId, judgement.Candidates[i], metrics) ?? throw new InvalidOperationException(judgement.Candidates[i].Error));
            }
        }

        return rows;
    }

    private void Report(string title, List<JudgedSample> rows)
    {
        var cells = JudgeAgreement.Compute(rows);
        output.WriteLine($"{RubricJudge.JudgeName} (calibrated) vs ground-truth metrics on {title}: {rows.Count} decompositions (ground truth + degraded variants)");
        output.WriteLine(JudgeAgreement.Format(cells));
        output.WriteLine($"not applicable (left out): {(skipped.Count == 0 ? "none" : string.Join(", ", skipped))}");

        double Rho(string s, string m) => cells.Single(c => c.Score == s && c.Metric == m).Rho!.Value;
        Assert.True(Rho("reward", "best_match_l1") < -0.3, $"reward vs best-match L1: {Rho("reward", "best_match_l1"):F3}");
        Assert.True(Rho("reward", "bad_layers") < -0.2, $"reward vs bad layers: {Rho("reward", "bad_layers"):F3}");
        Assert.True(Rho("content_validity", "recon_l1") < -0.5, $"content validity vs recon L1: {Rho("content_validity", "recon_l1"):F3}");
        Assert.True(Rho("background_inpainting", "layer0_inpaint_l1") < -0.2, $"background vs inpaint L1: {Rho("background_inpainting", "layer0_inpaint_l1"):F3}");
    }
}
