using System.Text.Json;
using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.TestSupport;

namespace StableLayers.Metrics.Tests;

/// <summary>
/// Our metrics against independent references (numpy/scipy/scikit-image) produced by
/// tests/golden/make_metric_golden.py from the definitions in docs/EVALUATION.md.
/// </summary>
public class GoldenMetricTests
{
    private const double Tol = 1e-4;
    private static readonly Lazy<JsonElement> Golden = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(TestData.GoldenDir, "metrics_golden.json"))).RootElement);

    [Fact]
    public void AssignmentMatchesScipyOptimum()
    {
        int cases = 0;
        foreach (var c in Golden.Value.GetProperty("assignment").EnumerateArray())
        {
            var rows = c.GetProperty("cost").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetDouble()).ToArray()).ToArray();
            var cost = new double[rows.Length, rows[0].Length];
            for (int i = 0; i < rows.Length; i++)
            {
                for (int j = 0; j < rows[0].Length; j++)
                {
                    cost[i, j] = rows[i][j];
                }
            }

            var pairs = LinearAssignment.Solve(cost);
            Assert.Equal(Math.Min(rows.Length, rows[0].Length), pairs.Length);
            Assert.Equal(pairs.Length, pairs.Select(p => p.Col).Distinct().Count());
            Assert.Equal(c.GetProperty("total").GetDouble(), pairs.Sum(p => cost[p.Row, p.Col]), 9);
            cases++;
        }

        Assert.True(cases >= 12);
    }

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var s in Golden.Value.GetProperty("samples").EnumerateArray())
        {
            data.Add(s.GetProperty("sample").GetString()!, s.GetProperty("variant").GetString()!);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MetricsMatchIndependentReference(string sample, string variant)
    {
        var expected = Golden.Value.GetProperty("samples").EnumerateArray()
            .First(s => s.GetProperty("sample").GetString() == sample && s.GetProperty("variant").GetString() == variant)
            .GetProperty("metrics");
        var dir = Path.Combine(TestData.RealPsdDev, sample);
        var gt = LayeredFolder.Read(dir);
        var composite = LayeredFolder.ReadComposite(dir)!;
        var pred = Variant(variant, gt, composite);
        var m = DecompositionEvaluator.Evaluate(sample, pred, gt, composite);

        Near(expected, "best_match_l1", m.BestMatchL1);
        var byPred = expected.GetProperty("best_match_l1_by_pred_index").EnumerateArray().ToArray();
        Assert.Equal(byPred.Length, m.BestMatchL1ByPredIndex!.Count);
        for (int k = 0; k < byPred.Length; k++)
        {
            Near(byPred[k], m.BestMatchL1ByPredIndex[k], $"pred index {k}");
        }

        Near(expected, "evenness", m.Evenness);
        Near(expected, "layer0_ssim", m.Layer0Ssim);
        Near(expected, "layer0_inpaint_l1", m.Layer0InpaintL1);
        Near(expected, "recon_l1", m.ReconL1);
        Assert.Equal(expected.GetProperty("blank").GetInt32(), m.Blank);
        Assert.Equal(expected.GetProperty("glazed").GetInt32(), m.Glazed);
        Assert.Equal(expected.GetProperty("artifact").GetInt32(), m.Artifact);
        Assert.Equal(expected.GetProperty("degenerate_bg").GetInt32(), m.DegenerateBg);
        Assert.Equal(expected.GetProperty("bad_layers").GetInt32(), m.BadLayers);
    }

    /// <summary>The prediction variants of make_metric_golden.py, rebuilt exactly.</summary>
    internal static LayerStack Variant(string name, LayerStack gt, RgbaImage composite)
    {
        var layers = gt.Images.Select(i => i.Clone()).ToList();
        switch (name)
        {
            case "identity":
                break;
            case "roll7":
                layers = layers.Select(l => Roll(l, 7)).ToList();
                break;
            case "half_alpha":
                foreach (var l in layers.Skip(1))
                {
                    for (int i = 3; i < l.Pixels.Length; i += 4)
                    {
                        l.Pixels[i] = (byte)(l.Pixels[i] / 2);
                    }
                }

                break;
            case "blank_last":
                layers[^1] = new RgbaImage(gt.Width, gt.Height);
                break;
            case "copy_on_top":
                var top = composite.Clone();
                for (int i = 3; i < top.Pixels.Length; i += 4)
                {
                    top.Pixels[i] = 255;
                }

                layers.Add(top);
                break;
            case "transparent_bg":
                for (int i = 3; i < layers[0].Pixels.Length; i += 4)
                {
                    layers[0].Pixels[i] = (byte)(layers[0].Pixels[i] / 3);
                }

                break;
            case "speckle":
                for (int y = 0; y < gt.Height; y++)
                {
                    for (int x = 0; x < gt.Width; x++)
                    {
                        if (x % 3 != 0 || y % 3 != 0)
                        {
                            layers[1].Pixels[(((y * gt.Width) + x) * 4) + 3] = 0;
                        }
                    }
                }

                break;
            default:
                throw new ArgumentException(name);
        }

        return new LayerStack(layers.ToArray());
    }

    private static RgbaImage Roll(RgbaImage img, int shift)
    {
        var o = new RgbaImage(img.Width, img.Height);
        for (int y = 0; y < img.Height; y++)
        {
            for (int x = 0; x < img.Width; x++)
            {
                int nx = (x + shift) % img.Width;
                Array.Copy(img.Pixels, ((y * img.Width) + x) * 4, o.Pixels, ((y * img.Width) + nx) * 4, 4);
            }
        }

        return o;
    }

    private static void Near(JsonElement obj, string name, double? actual) => Near(obj.GetProperty(name), actual, name);

    private static void Near(JsonElement expected, double? actual, string what)
    {
        if (expected.ValueKind == JsonValueKind.Null)
        {
            Assert.True(actual is null, $"{what}: expected null, got {actual}");
            return;
        }

        Assert.True(actual is not null, $"{what}: expected {expected.GetDouble()}, got null");
        Assert.True(Math.Abs(expected.GetDouble() - actual!.Value) <= Tol, $"{what}: expected {expected.GetDouble():R}, got {actual:R}");
    }
}
