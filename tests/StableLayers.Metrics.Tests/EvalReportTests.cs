using System.Text.Json;
using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Metrics.Evaluation;
using StableLayers.TestSupport;

namespace StableLayers.Metrics.Tests;

public class EvalReportTests
{
    [Fact]
    public void MetricsJsonHasTheDocumentedShapeAndNullsWithoutGroundTruth()
    {
        using var tmp = new TempDir();
        var pred = Path.Combine(tmp.Path, "pred");
        var input = RgbaImage.Filled(16, 16, 255, 255, 255, 255);
        LayeredFolder.Write(Path.Combine(pred, "a"), new LayerStack(RgbaImage.Filled(16, 16, 0, 0, 0, 255), new RgbaImage(16, 16)), input: input);
        LayeredFolder.Write(Path.Combine(pred, "b"), new LayerStack(RgbaImage.Filled(16, 16, 9, 9, 9, 255), new RgbaImage(16, 16), new RgbaImage(16, 16)));
        var report = EvalRunner.Run(pred, null);
        report.Write(Path.Combine(tmp.Path, "out"));
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(tmp.Path, "out", "metrics.json")));
        var root = doc.RootElement;
        var a = root.GetProperty("samples")[0];
        foreach (var name in new[] { "id", "layers_pred", "layers_gt", "best_match_l1", "best_match_l1_by_pred_index", "layerd_rgb_l1", "layerd_alpha_iou", "blank", "glazed", "degenerate_bg", "bad_layers", "evenness", "layer0_ssim", "layer0_inpaint_l1", "recon_l1" })
        {
            Assert.True(a.TryGetProperty(name, out _), $"missing {name}");
        }

        Assert.Equal("a", a.GetProperty("id").GetString());
        Assert.Equal(JsonValueKind.Null, a.GetProperty("best_match_l1").ValueKind);
        Assert.Equal(JsonValueKind.Number, a.GetProperty("recon_l1").ValueKind);
        Assert.Equal(1, a.GetProperty("blank").GetInt32());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("samples")[1].GetProperty("recon_l1").ValueKind); // no input.png
        Assert.Equal(1.5, root.GetProperty("aggregate").GetProperty("all").GetProperty("blank").GetDouble(), 9);
        Assert.Equal(1.0, root.GetProperty("aggregate").GetProperty("by_layers").GetProperty("2").GetProperty("blank").GetDouble(), 9);
        Assert.Equal(2.0, root.GetProperty("aggregate").GetProperty("by_layers").GetProperty("3").GetProperty("blank").GetDouble(), 9);
        Assert.False(root.GetProperty("aggregate").GetProperty("all").TryGetProperty("best_match_l1", out _));
        Assert.Contains("N = 3 predicted layers", File.ReadAllText(Path.Combine(tmp.Path, "out", "report.md")));
    }

    [Fact]
    public void BadSampleIsReportedAndTheRestStillEvaluated()
    {
        using var tmp = new TempDir();
        var stack = new LayerStack(RgbaImage.Filled(16, 16, 0, 0, 0, 255));
        LayeredFolder.Write(Path.Combine(tmp.Path, "good"), stack);
        LayeredFolder.Write(Path.Combine(tmp.Path, "bad"), stack);
        File.WriteAllBytes(Path.Combine(tmp.Path, "bad", "layer_00.png"), [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]);
        var report = EvalRunner.Run(tmp.Path, null);
        Assert.Single(report.Samples);
        Assert.Equal("good", report.Samples[0].Id);
        var failure = Assert.Single(report.Failures);
        Assert.Equal("bad", failure.Id);
        Assert.Contains("layer_00.png", failure.Error);
    }

    [Fact]
    public void BootstrapIntervalContainsTheMeanAndIsDeterministic()
    {
        var values = Enumerable.Range(0, 50).Select(i => (double)(i % 7)).ToList();
        var ci = Aggregation.BootstrapCi(values, 1000, 1);
        double mean = values.Average();
        Assert.InRange(mean, ci[0], ci[1]);
        Assert.True(ci[1] - ci[0] > 0.1);
        Assert.Equal(ci, Aggregation.BootstrapCi(values, 1000, 1));
    }
}

public class EvaluatorLayerDTests
{
    [Fact]
    public void EvaluatorFillsLayerDEditLevelsFromTheProtocol()
    {
        var dir = Path.Combine(TestData.RealPsdDev, "groups");
        var gt = LayeredFolder.Read(dir);
        var pred = GoldenMetricTests.Variant("roll7", gt, LayeredFolder.ReadComposite(dir)!);
        var m = DecompositionEvaluator.Evaluate("groups", pred, gt, LayeredFolder.ReadComposite(dir));
        var direct = LayerD.LayerDProtocol.Evaluate(pred, gt)!;
        Assert.Equal(6, m.LayerdRgbL1!.Count);
        Assert.Equal(direct.RgbL1, m.LayerdRgbL1);
        Assert.Equal(direct.AlphaIoU, m.LayerdAlphaIou);
        Assert.True(m.LayerdRgbL1[0] > 0);
    }
}
