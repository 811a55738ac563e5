using System.Text.Json;
using StableLayers.Metrics.Evaluation;
using StableLayers.TestSupport;

namespace StableLayers.Metrics.Tests;

/// <summary>
/// eval --baseline: tuned minus base per sample, paired by id, against numpy/scipy values
/// (tests/golden/make_paired_golden.py): pair counts, means and differences exactly, bootstrap intervals within
/// the Monte Carlo error of 2,000 resamples.
/// </summary>
public class PairedComparisonTests
{
    private static readonly JsonElement Golden =
        JsonDocument.Parse(File.ReadAllText(Path.Combine(TestData.GoldenDir, "paired_golden.json"))).RootElement;

    private static EvalReport Report(string side) =>
        EvalReport.Build(Golden.GetProperty(side).EnumerateArray().Select(s => new SampleMetrics
        {
            Id = s.GetProperty("id").GetString()!,
            LayersPred = s.GetProperty("layers_pred").GetInt32(),
            ReconL1 = s.GetProperty("recon_l1").GetDouble(),
            Evenness = s.GetProperty("evenness").ValueKind == JsonValueKind.Null ? null : s.GetProperty("evenness").GetDouble(),
            BadLayers = s.GetProperty("bad_layers").GetInt32(),
        }).ToList(), []);

    [Fact]
    public void PairsByIdAndMatchesScipyOverallAndByLayerCount()
    {
        var paired = PairedReport.Build(Report("base"), Report("tuned"));
        Assert.Equal(Golden.GetProperty("pairs").GetInt32(), paired.Pairs);
        Assert.Equal(Golden.GetProperty("unpaired").EnumerateArray().Select(e => e.GetString()!).ToList(), paired.Unpaired);
        Check(Golden.GetProperty("all"), paired.All);
        var byLayers = Golden.GetProperty("by_layers");
        Assert.Equal(byLayers.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal), paired.ByLayers.Keys);
        foreach (var group in byLayers.EnumerateObject())
        {
            Check(group.Value, paired.ByLayers[group.Name]);
        }
    }

    private static void Check(JsonElement expected, SortedDictionary<string, PairedDifference> actual)
    {
        foreach (var metric in expected.EnumerateObject())
        {
            var e = metric.Value;
            var a = actual[metric.Name];
            int n = e.GetProperty("n").GetInt32();
            Assert.Equal(n, a.Pairs);
            Assert.Equal(e.GetProperty("base").GetDouble(), a.Base, 12);
            Assert.Equal(e.GetProperty("tuned").GetDouble(), a.Tuned, 12);
            Assert.Equal(e.GetProperty("diff").GetDouble(), a.Difference, 12);

            // 2,000 resamples put a percentile within ~0.06 standard errors of the exact bootstrap quantile; an
            // unpaired bootstrap (base and tuned resampled apart) would be several standard errors wider here. Means
            // of 0/1/2/3 counts sit on a 1/n lattice, so those quantiles may also land one step apart.
            double sigma = e.GetProperty("sigma_mean").GetDouble();
            double tolerance = (0.35 * sigma) + (metric.Name == "bad_layers" ? 1.0 / n : 0);
            var ci = e.GetProperty("ci95");
            Assert.InRange(a.Ci95[0], ci[0].GetDouble() - tolerance, ci[0].GetDouble() + tolerance);
            Assert.InRange(a.Ci95[1], ci[1].GetDouble() - tolerance, ci[1].GetDouble() + tolerance);
        }
    }

    [Fact]
    public void PairedIntervalIsNarrowWhenTheModelsMoveTogether()
    {
        // Large sample-to-sample spread, small and constant per-sample change: the paired interval must be tight
        // around the change, far inside the spread of either model's own values.
        var b = new List<SampleMetrics>();
        var t = new List<SampleMetrics>();
        for (int i = 0; i < 30; i++)
        {
            double v = 0.05 + (0.01 * (i * 7 % 30));
            b.Add(new SampleMetrics { Id = $"s{i}", LayersPred = 3, ReconL1 = v });
            t.Add(new SampleMetrics { Id = $"s{i}", LayersPred = 3, ReconL1 = v - 0.02 + (i % 2 == 0 ? 0.001 : -0.001) });
        }

        var d = PairedReport.Build(EvalReport.Build(b, []), EvalReport.Build(t, [])).All["recon_l1"];
        Assert.Equal(-0.02, d.Difference, 12);
        Assert.InRange(d.Ci95[0], -0.0205, -0.02);
        Assert.InRange(d.Ci95[1], -0.02, -0.0195);
    }

    [Fact]
    public void RoundTripsThroughJsonAndWritesTheMarkdownTable()
    {
        var paired = PairedReport.Build(Report("base"), Report("tuned"));
        using var tmp = new TempDir();
        paired.Write(tmp.Path);
        var back = PairedReport.Read(Path.Combine(tmp.Path, PairedReport.FileName));
        Assert.Equal(paired.All["evenness"], back.All["evenness"] with { Ci95 = paired.All["evenness"].Ci95 });
        Assert.Equal(paired.All["evenness"].Ci95, back.All["evenness"].Ci95);
        string md = File.ReadAllText(Path.Combine(tmp.Path, PairedReport.MarkdownFileName));
        Assert.Contains("| evenness (higher is better) | 35 |", md);
        Assert.Contains("## N = 5", md);
        Assert.Contains("only-base", md);
        Assert.Throws<Core.BadInputException>(() => PairedReport.Read(Path.Combine(tmp.Path, "missing.json")));
        File.WriteAllText(Path.Combine(tmp.Path, "bad.json"), "{not json");
        Assert.Throws<Core.BadInputException>(() => PairedReport.Read(Path.Combine(tmp.Path, "bad.json")));
    }
}
