using System.Diagnostics;
using System.Text.Json;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Metrics.LayerD;
using StableLayers.TestSupport;
using Xunit.Abstractions;

namespace StableLayers.Metrics.Tests;

public sealed class LayerDProtocolTests(ITestOutputHelper output)
{
    private const double GoldenTolerance = 1e-9;

    private static string CasesDir => Path.Combine(TestData.GoldenDir, "layerd_cases");

    // ---------- Pillow alpha_composite ----------

    [Fact]
    public void AlphaComposite_MatchesPillowOverEveryAlphaPair()
    {
        // The generator's alpha_composite_inputs(): row y = dst alpha, column x = src alpha, colours from an integer hash.
        var dst = new RgbaImage(256, 256);
        var src = new RgbaImage(256, 256);
        for (int y = 0; y < 256; y++)
        {
            for (int x = 0; x < 256; x++)
            {
                int i = ((y * 256) + x) * 4;
                for (int c = 0; c < 3; c++)
                {
                    dst.Pixels[i + c] = (byte)(((x * 37) + (y * 11) + (c * 101)) % 256);
                    src.Pixels[i + c] = (byte)(((x * 13) + (y * 29) + (c * 53) + 7) % 256);
                }

                dst.Pixels[i + 3] = (byte)y;
                src.Pixels[i + 3] = (byte)x;
            }
        }

        var expected = PngCodec.Read(Path.Combine(CasesDir, "pil_alpha_composite.png"));
        var actual = PilAlphaComposite.Composite(dst, src);
        int mismatches = 0;
        for (int i = 0; i < expected.Pixels.Length; i++)
        {
            mismatches += expected.Pixels[i] != actual.Pixels[i] ? 1 : 0;
        }

        Assert.Equal(0, mismatches);
    }

    [Fact]
    public void AlphaComposite_TransparentSourceKeepsDestinationBytes()
    {
        var dst = Solid(2, 1, 10, 20, 30, 0);
        var src = Solid(2, 1, 200, 100, 50, 0);
        Assert.Equal(dst.Pixels, PilAlphaComposite.Composite(dst, src).Pixels);

        // An opaque source over anything is the source; a source over a transparent destination keeps its colour.
        var opaque = Solid(2, 1, 1, 2, 3, 255);
        Assert.Equal(opaque.Pixels, PilAlphaComposite.Composite(dst, opaque).Pixels);
        var half = Solid(2, 1, 200, 100, 50, 128);
        Assert.Equal(half.Pixels, PilAlphaComposite.Composite(dst, half).Pixels);
    }

    // ---------- golden values from LayerD's own Python evaluation ----------

    [Fact]
    public void Golden_MatchesLayerDPython()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestData.GoldenDir, "layerd_protocol.json")));
        var cache = new Dictionary<string, RgbaImage>();
        RgbaImage Load(string rel)
        {
            if (!cache.TryGetValue(rel, out var img))
            {
                img = PngCodec.Read(Path.Combine(CasesDir, rel));
                cache[rel] = img;
            }

            return img;
        }

        double maxDiff = 0;
        int evaluated = 0, skipped = 0;
        var failures = new List<string>();
        var results = new List<LayerDResult>();
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            string name = $"{c.GetProperty("sample").GetString()}/{c.GetProperty("case").GetString()}";
            var pred = c.GetProperty("pred").EnumerateArray().Select(e => Load(e.GetString()!)).ToList();
            var gt = c.GetProperty("gt").EnumerateArray().Select(e => Load(e.GetString()!)).ToList();

            AssertGroups(name, "pred", c.GetProperty("pred_groups"), LayerDGrouping.GroupTopLayers(pred), failures);
            AssertGroups(name, "gt", c.GetProperty("gt_groups"), LayerDGrouping.GroupTopLayers(gt), failures);

            var actual = LayerDProtocol.Evaluate(pred, gt);
            var expected = c.GetProperty("result");
            if (expected.ValueKind == JsonValueKind.Null)
            {
                skipped++;
                if (actual is not null)
                {
                    failures.Add($"{name}: expected null (skipped), got a result");
                }

                continue;
            }

            evaluated++;
            if (actual is null)
            {
                failures.Add($"{name}: expected a result, got null");
                continue;
            }

            results.Add(actual);
            if (actual.EditsTaken != expected.GetProperty("edits").GetInt32())
            {
                failures.Add($"{name}: edits {actual.EditsTaken} != {expected.GetProperty("edits").GetInt32()}");
            }

            foreach (var (key, values) in new[] { ("rgb_l1", actual.RgbL1), ("alpha_iou", actual.AlphaIoU), ("cost", actual.Cost) })
            {
                var exp = expected.GetProperty(key).EnumerateArray().Select(e => e.GetDouble()).ToArray();
                Assert.Equal(exp.Length, values.Length);
                for (int k = 0; k < exp.Length; k++)
                {
                    double d = Math.Abs(exp[k] - values[k]);
                    maxDiff = Math.Max(maxDiff, d);
                    if (!(d <= GoldenTolerance))
                    {
                        failures.Add($"{name}: {key}[{k}] {values[k]:R} != {exp[k]:R}");
                    }
                }
            }
        }

        // LayersEditDist.aggregate over every evaluated case.
        var aggregate = LayerDProtocol.Aggregate(results);
        var expAgg = doc.RootElement.GetProperty("aggregate").EnumerateArray().ToList();
        Assert.Equal(expAgg.Count, aggregate.Count);
        for (int i = 0; i < expAgg.Count; i++)
        {
            var e = expAgg[i];
            var a = aggregate[i];
            Assert.Equal(e.GetProperty("max_edits").GetDouble(), a.MaxEdits);
            Assert.Equal(e.GetProperty("count").GetDouble(), a.Count);
            foreach (var (exp, act) in new[]
            {
                (e.GetProperty("avg_edits").GetDouble(), a.AvgEdits), (e.GetProperty("avg_cost").GetDouble(), a.AvgCost),
                (e.GetProperty("avg_rgb_l1").GetDouble(), a.AvgRgbL1), (e.GetProperty("avg_alpha_iou").GetDouble(), a.AvgAlphaIoU),
            })
            {
                maxDiff = Math.Max(maxDiff, Math.Abs(exp - act));
                Assert.True(Math.Abs(exp - act) <= GoldenTolerance, $"aggregate level {i}: {act:R} != {exp:R}");
            }
        }

        output.WriteLine($"{evaluated} evaluated + {skipped} skipped cases; max |C# - LayerD| = {maxDiff:E3}");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        Assert.True(evaluated > 100);
    }

    private static void AssertGroups(string name, string side, JsonElement expected, IReadOnlyList<int[]> actual, List<string> failures)
    {
        var exp = expected.EnumerateArray().Select(g => string.Join(",", g.EnumerateArray().Select(e => e.GetInt32()))).ToList();
        var act = actual.Select(g => string.Join(",", g)).ToList();
        if (!exp.SequenceEqual(act))
        {
            failures.Add($"{name}: {side} groups [{string.Join("|", act)}] != [{string.Join("|", exp)}]");
        }
    }

    // ---------- hand-built stacks ----------

    [Fact]
    public void Identical_StacksScorePerfectly()
    {
        var stack = new[] { Solid(8, 8, 255, 255, 255, 255), Rect(8, 8, 1, 1, 4, 4, 200, 0, 0, 255), Rect(8, 8, 3, 3, 7, 7, 0, 0, 200, 128) };
        var r = LayerDProtocol.Evaluate(stack, stack)!;
        Assert.Equal(0, r.EditsTaken);
        Assert.All(r.RgbL1, v => Assert.Equal(0, v));
        Assert.All(r.AlphaIoU, v => Assert.Equal(1, v));
        Assert.All(r.Cost, v => Assert.Equal(0, v));
        Assert.Equal(6, r.RgbL1.Length);

        var viaStacks = LayerDProtocol.Evaluate(new LayerStack(stack), new LayerStack(stack))!;
        Assert.Equal(r.AlphaIoU, viaStacks.AlphaIoU);
    }

    [Fact]
    public void FewerThanTwoLayers_IsSkipped()
    {
        var bg = Solid(4, 4, 255, 255, 255, 255);
        var fg = Rect(4, 4, 0, 0, 2, 2, 0, 0, 0, 255);
        Assert.Null(LayerDProtocol.Evaluate([bg], [bg, fg]));
        Assert.Null(LayerDProtocol.Evaluate([bg, fg], [bg]));

        // Two layers that group into one are NOT skipped: LayerD only counts the files.
        var a = Rect(4, 4, 0, 0, 2, 4, 10, 10, 10, 255);
        var b = Rect(4, 4, 2, 0, 4, 4, 20, 20, 20, 255);
        var r = LayerDProtocol.Evaluate([a, b], [a, b])!;
        Assert.Equal([new[] { 0, 1 }], r.PredGroups);
        Assert.Equal(0, r.RgbL1[0]);
        Assert.Equal(1, r.AlphaIoU[0]);
    }

    [Fact]
    public void PairMetrics_HandComputed()
    {
        // gt: 2 opaque pixels of 4 (grey 100); pred: the same 2 pixels at alpha 128 with colour 151 (|diff| 51 = 0.2),
        // plus one pixel outside the gt mask (ignored by RGB L1, counted by IoU's union).
        var gt = new RgbaImage(4, 1);
        var pred = new RgbaImage(4, 1);
        SetPixel(gt, 0, 100, 100, 100, 255);
        SetPixel(gt, 1, 100, 100, 100, 255);
        SetPixel(pred, 0, 151, 151, 151, 128);
        SetPixel(pred, 1, 151, 151, 151, 128);
        SetPixel(pred, 2, 0, 0, 0, 255);
        var s = LayerDMetrics.Score(pred, gt);
        Assert.Equal(0.4 / (2 + 1e-8), s.RgbL1, 15); // LayerD divides by (mask count + 1e-8)
        Assert.Equal((128.0 + 128.0) / (255.0 + 255.0 + 255.0), s.AlphaIoU, 12);
        Assert.Equal((s.RgbL1 + 1 - s.AlphaIoU) / 2, s.Cost, 15);

        // The predicted colour counts even where the prediction is fully transparent; both empty: L1 0, IoU 0.
        var clear = new RgbaImage(4, 1);
        SetPixel(clear, 0, 100, 100, 100, 0);
        SetPixel(clear, 1, 49, 49, 49, 0);
        Assert.Equal(0.2 / (2 + 1e-8), LayerDMetrics.RgbL1(clear, gt), 15);
        Assert.Equal(0, LayerDMetrics.AlphaIoU(clear, new RgbaImage(4, 1)));
        Assert.Equal(0, LayerDMetrics.RgbL1(gt, new RgbaImage(4, 1)));
        Assert.Equal(0.5, LayerDMetrics.Cost(clear, new RgbaImage(4, 1)));
    }

    [Fact]
    public void DisjointShapes_ScoreZeroIoU()
    {
        // Same background; the foreground shape is on the left in gt and on the right in pred (black shape, white bg).
        var bg = Solid(8, 4, 255, 255, 255, 255);
        var left = Rect(8, 4, 0, 0, 4, 4, 0, 0, 0, 255);
        var right = Rect(8, 4, 4, 0, 8, 4, 0, 0, 0, 255);
        var r = LayerDProtocol.Evaluate([bg, right], [bg, left])!;

        // Path (0,0),(1,1): bg pair is perfect; fg pair: IoU 0, and RGB L1 over gt's left half where pred is (0,0,0,0) -> 0.
        Assert.Equal(0, r.EditsTaken);
        Assert.Equal(0.5, r.AlphaIoU[0], 15);
        Assert.Equal(0, r.RgbL1[0], 15);
        Assert.Equal(0.25, r.Cost[0], 15);
    }

    [Fact]
    public void NonOverlappingLayers_AreGroupedAndFlattened()
    {
        // Layers 1 and 2 do not overlap each other; layer 3 overlaps layer 1 only; the background overlaps all.
        // Round 1 peels {2, 3} (nothing above them overlaps them), round 2 {1}, round 3 {0}. Back to front: [0], [1], [2,3].
        var bg = Solid(8, 8, 255, 255, 255, 255);
        var l1 = Rect(8, 8, 0, 0, 4, 4, 255, 0, 0, 255);
        var l2 = Rect(8, 8, 4, 4, 8, 8, 0, 255, 0, 255);
        var l3 = Rect(8, 8, 2, 2, 4, 4, 0, 0, 255, 255);
        var groups = LayerDGrouping.GroupTopLayers([bg, l1, l2, l3]);
        Assert.Equal([new[] { 0 }, new[] { 1 }, new[] { 2, 3 }], groups);

        var flattened = LayerDGrouping.GroupAndComposite([bg, l1, l2, l3]);
        Assert.Equal(3, flattened.Count);
        Assert.Same(bg, flattened[0]);
        Assert.Equal(PilAlphaComposite.Composite(l2, l3).Pixels, flattened[2].Pixels);

        // A prediction that splits a layer into two disjoint halves is grouped back together: a perfect score.
        var topLeft = Rect(8, 8, 0, 0, 4, 2, 255, 0, 0, 255);
        var bottomLeft = Rect(8, 8, 0, 2, 4, 4, 255, 0, 0, 255);
        var r = LayerDProtocol.Evaluate([bg, topLeft, bottomLeft], [bg, l1])!;
        Assert.Equal([new[] { 0 }, new[] { 1, 2 }], r.PredGroups);
        Assert.Equal(0, r.RgbL1[0]);
        Assert.Equal(1, r.AlphaIoU[0]);

        // Faint alpha noise everywhere defeats the grouping (LayerD groups on alpha > 0).
        var noisyTop = topLeft.Clone();
        var noisyBottom = bottomLeft.Clone();
        for (int i = 3; i < noisyTop.Pixels.Length; i += 4)
        {
            noisyTop.Pixels[i] = Math.Max(noisyTop.Pixels[i], (byte)1);
            noisyBottom.Pixels[i] = Math.Max(noisyBottom.Pixels[i], (byte)1);
        }

        Assert.Equal([new[] { 0 }, new[] { 1 }, new[] { 2 }], LayerDGrouping.GroupTopLayers([bg, noisyTop, noisyBottom]));
    }

    [Fact]
    public void MergeThatHelps_IsTakenAndCarriedForward()
    {
        // gt: bg + one layer holding a red square and a blue square that overlap (so the gt layer is a single group).
        // pred: bg + red square + blue square as two layers that overlap each other (cannot be grouped).
        var bg = Solid(8, 8, 255, 255, 255, 255);
        var red = Rect(8, 8, 0, 0, 5, 5, 255, 0, 0, 255);
        var blue = Rect(8, 8, 3, 3, 8, 8, 0, 0, 255, 255);
        var both = PilAlphaComposite.Composite(red, blue);
        var r = LayerDProtocol.Evaluate([bg, red, blue], [bg, both])!;
        Assert.Equal(3, r.PredGroups.Count);

        // Before: path (0,0),(1,1),(2,1) - two partial matches. After merging pred 1+2: identical stacks.
        Assert.True(r.AlphaIoU[0] < 1);
        Assert.Equal(1, r.EditsTaken);
        Assert.Equal(0, r.RgbL1[1]);
        Assert.Equal(1, r.AlphaIoU[1]);
        for (int k = 2; k <= 5; k++)
        {
            Assert.Equal(r.AlphaIoU[1], r.AlphaIoU[k]);
            Assert.Equal(r.RgbL1[1], r.RgbL1[k]);
        }

        // maxEdits 0 reports level 0 only.
        var r0 = LayerDProtocol.Evaluate([bg, red, blue], [bg, both], maxEdits: 0)!;
        Assert.Single(r0.RgbL1);
        Assert.Equal(r.AlphaIoU[0], r0.AlphaIoU[0]);
    }

    [Fact]
    public void TwoGroupsPerSide_NeverMerge()
    {
        // Merge only considers a side with more than 2 (grouped) layers.
        var bg = Solid(8, 8, 255, 255, 255, 255);
        var fg = Rect(8, 8, 0, 0, 8, 8, 0, 0, 0, 128);
        var r = LayerDProtocol.Evaluate([bg, fg], [fg, bg])!;
        Assert.Equal(0, r.EditsTaken);
    }

    [Fact]
    public void Evaluate_IsFastOn640x640FiveLayers()
    {
        var (pred, gt) = BenchmarkStacks();
        LayerDProtocol.Evaluate(pred, gt); // warm-up (JIT)
        var sw = Stopwatch.StartNew();
        const int runs = 5;
        LayerDResult? r = null;
        for (int i = 0; i < runs; i++)
        {
            r = LayerDProtocol.Evaluate(pred, gt);
        }

        double ms = sw.Elapsed.TotalMilliseconds / runs;
        output.WriteLine($"640x640, 5 vs 5 layers: {ms:F1} ms per evaluation, {r!.EditsTaken} edits");
        Assert.True(ms < 10000, $"{ms} ms"); // only catches gross regressions; see bench/layerd_python_timing.py for the comparison

        // LayerD's Python on the same sample (bench/layerd_python_timing.py --synthetic): 1 edit, then no gain.
        Assert.Equal(1, r.EditsTaken);
        Assert.Equal(0.01956601010124971, r.RgbL1[0], 1e-12);
        Assert.Equal(0.8072250083300163, r.AlphaIoU[0], 1e-12);
        Assert.Equal(0.10617050088561664, r.Cost[0], 1e-12);
        Assert.Equal(0.0030704392787061483, r.RgbL1[5], 1e-12);
        Assert.Equal(0.9365254599484835, r.AlphaIoU[5], 1e-12);
        Assert.Equal(0.03327248966511136, r.Cost[5], 1e-12);
    }

    /// <summary>The same deterministic 640x640 5-layer sample as bench/layerd_python_timing.py --synthetic.</summary>
    internal static (List<RgbaImage> Pred, List<RgbaImage> Gt) BenchmarkStacks()
    {
        const int size = 640;
        var gt = new List<RgbaImage> { Solid(size, size, 240, 240, 230, 255) };
        int[][] rects = [[40, 60, 400, 420], [200, 100, 600, 400], [250, 250, 620, 620], [60, 300, 380, 600]];
        for (int k = 0; k < rects.Length; k++)
        {
            var r = rects[k];
            gt.Add(Rect(size, size, r[0], r[1], r[2], r[3], (byte)(50 * k), (byte)(200 - (40 * k)), (byte)(30 + (50 * k)), (byte)(255 - (30 * k))));
        }

        // prediction: layers 1 and 2 merged, layer 3 shifted by 5 px, a soft extra layer on top
        var pred = new List<RgbaImage> { gt[0], PilAlphaComposite.Composite(gt[1], gt[2]) };
        var shifted = new RgbaImage(size, size);
        for (int y = 0; y < size - 5; y++)
        {
            Array.Copy(gt[3].Pixels, y * size * 4, shifted.Pixels, (((y + 5) * size) + 5) * 4, (size - 5) * 4);
        }

        pred.Add(shifted);
        pred.Add(gt[4]);
        pred.Add(Rect(size, size, 100, 100, 500, 200, 255, 255, 0, 100));
        return (pred, gt);
    }

    private static RgbaImage Solid(int w, int h, byte r, byte g, byte b, byte a) => RgbaImage.Filled(w, h, r, g, b, a);

    private static RgbaImage Rect(int w, int h, int x0, int y0, int x1, int y1, byte r, byte g, byte b, byte a)
    {
        var img = new RgbaImage(w, h);
        for (int y = y0; y < y1; y++)
        {
            for (int x = x0; x < x1; x++)
            {
                SetPixel(img, (y * w) + x, r, g, b, a);
            }
        }

        return img;
    }

    private static void SetPixel(RgbaImage img, int index, byte r, byte g, byte b, byte a)
    {
        img.Pixels[index * 4] = r;
        img.Pixels[(index * 4) + 1] = g;
        img.Pixels[(index * 4) + 2] = b;
        img.Pixels[(index * 4) + 3] = a;
    }
}
