using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.TestSupport;

namespace StableLayers.Metrics.Tests;

public class MetricUnitTests
{
    private static LayerPlanes P(RgbaImage i) => LayerPlanes.From(i);

    [Fact]
    public void AssignmentPicksTheCheaperPermutation()
    {
        var pairs = LinearAssignment.Solve(new double[,] { { 4, 1, 3 }, { 2, 0, 5 }, { 3, 2, 2 } });
        Assert.Equal([(0, 1), (1, 0), (2, 2)], pairs);
    }

    [Fact]
    public void AssignmentOnTallMatrixLeavesWorstRowUnmatched()
    {
        var pairs = LinearAssignment.Solve(new double[,] { { 1 }, { 0.5 }, { 9 } });
        Assert.Equal([(1, 0)], pairs);
    }

    [Fact]
    public void PairCostCountsBothBackdrops()
    {
        // A white opaque layer vs a fully transparent one: on white they agree, on black they differ by 1.
        var white = RgbaImage.Filled(4, 4, 255, 255, 255, 255);
        var empty = new RgbaImage(4, 4);
        Assert.Equal(0.5, StackMetrics.PairCost(P(white), P(empty)), 6);
        Assert.Equal(0.0, StackMetrics.PairCost(P(white), P(white)), 9);
    }

    [Fact]
    public void BestMatchReportsPerPredictedIndexAndNullForUnmatched()
    {
        var bg = RgbaImage.Filled(8, 8, 10, 20, 30, 255);
        var fg = TestImages.Rect(8, 8, 2, 2, 5, 5, 200, 0, 0, 255);
        var extra = TestImages.Rect(8, 8, 0, 0, 1, 1, 0, 0, 255, 255);
        var r = StackMetrics.BestMatch([P(extra), P(fg), P(bg)], [P(bg), P(fg)]);
        Assert.Equal(0, r.Mean, 9);
        Assert.Null(r.ByPredIndex[0]);
        Assert.Equal(0.0, r.ByPredIndex[1]!.Value, 9);
    }

    [Fact]
    public void EvennessIsZeroWhenOneLayerHoldsEverythingAndOneWhenEqual()
    {
        var bg = RgbaImage.Filled(10, 10, 0, 0, 0, 255);
        var empty = new RgbaImage(10, 10);
        Assert.Equal(0.0, StackMetrics.Evenness([P(bg), P(empty)])!.Value, 9);
        var left = TestImages.Rect(10, 10, 0, 0, 5, 10, 1, 1, 1, 255);
        var right = TestImages.Rect(10, 10, 5, 0, 10, 10, 1, 1, 1, 255);
        Assert.Equal(1.0, StackMetrics.Evenness([P(left), P(right)])!.Value, 9);
        Assert.Null(StackMetrics.Evenness([P(bg)]));
        Assert.Null(StackMetrics.Evenness([P(empty), P(empty)]));
    }

    [Fact]
    public void SsimOfIdenticalImagesIsOneAndDropsWithNoise()
    {
        var a = new RgbaImage(32, 32);
        new Random(3).NextBytes(a.Pixels);
        var pa = P(a).OnWhite;
        Assert.Equal(1.0, Ssim.Compute(pa, pa, 32, 32)!.Value, 9);
        var b = a.Clone();
        new Random(4).NextBytes(b.Pixels);
        Assert.True(Ssim.Compute(pa, P(b).OnWhite, 32, 32) < 0.5);
        Assert.Null(Ssim.Compute(new float[10 * 10 * 3], new float[10 * 10 * 3], 10, 10));
    }

    [Fact]
    public void BlankDegenerateWashAndSpeckleAreDetected()
    {
        int w = 100, h = 100;
        var bg = RgbaImage.Filled(w, h, 50, 50, 50, 255);
        var good = TestImages.Rect(w, h, 10, 10, 40, 40, 255, 0, 0, 255);
        var blank = TestImages.Rect(w, h, 0, 0, 5, 5, 255, 0, 0, 255); // 25 px = 0.25% < 0.5%
        var wash = TestImages.Rect(w, h, 0, 0, 100, 60, 0, 0, 255, 80); // 60% coverage, alpha 0.31
        var speckle = new RgbaImage(w, h);
        for (int y = 0; y < h; y += 4)
        {
            for (int x = 0; x < w; x += 4)
            {
                speckle.Pixels[(((y * w) + x) * 4) + 3] = 255; // isolated single pixels: every component is a speck
            }
        }

        var q = LayerQuality.Assess([P(bg), P(good), P(blank), P(wash), P(speckle)], null);
        Assert.Equal(1, q.Blank);
        Assert.Equal(1, q.Glazed);
        Assert.Equal(1, q.Artifact);
        Assert.False(q.DegenerateBackground);
        Assert.Equal(3, q.BadLayers);
        Assert.True(q.Layers[2].Blank);
        Assert.True(q.Layers[3].Wash);
        Assert.True(q.Layers[4].Artifact);

        var holey = TestImages.Rect(w, h, 0, 0, 100, 94, 9, 9, 9, 255); // 94% opaque < 95%
        Assert.True(LayerQuality.IsDegenerateBackground(P(holey)));
        Assert.False(LayerQuality.IsDegenerateBackground(P(TestImages.Rect(w, h, 0, 0, 100, 95, 9, 9, 9, 255))));
    }

    [Fact]
    public void DuplicateOfInputAboveAnotherCopyIsGlazedButASingleLargeLayerIsNot()
    {
        int w = 40, h = 40;
        var input = new RgbaImage(w, h);
        new Random(9).NextBytes(input.Pixels);
        for (int i = 3; i < input.Pixels.Length; i += 4)
        {
            input.Pixels[i] = 255;
        }

        var inputPlane = LayerPlanes.RgbPlane(input);
        var single = LayerQuality.Assess([P(RgbaImage.Filled(w, h, 0, 0, 0, 255)), P(input)], inputPlane);
        Assert.Equal(0, single.Glazed);
        var doubled = LayerQuality.Assess([P(input), P(input.Clone())], inputPlane);
        Assert.Equal(1, doubled.Glazed);
        Assert.True(doubled.Layers[0].Copy);
    }

    [Fact]
    public void InpaintErrorOnlyCountsPixelsUnderGroundTruthForeground()
    {
        var gt0 = RgbaImage.Filled(20, 20, 100, 100, 100, 255);
        var gt1 = TestImages.Rect(20, 20, 0, 0, 10, 20, 0, 0, 0, 255);
        var pred0 = gt0.Clone();
        // differ by 51/255 = 0.2 on the covered half, 1.0 elsewhere (ignored)
        for (int y = 0; y < 20; y++)
        {
            for (int x = 0; x < 20; x++)
            {
                int i = ((y * 20) + x) * 4;
                byte v = x < 10 ? (byte)151 : (byte)0;
                pred0.Pixels[i] = pred0.Pixels[i + 1] = pred0.Pixels[i + 2] = v;
            }
        }

        Assert.Equal(0.2, StackMetrics.Layer0InpaintL1(P(pred0), [P(gt0), P(gt1)])!.Value, 5);
        Assert.Null(StackMetrics.Layer0InpaintL1(P(pred0), [P(gt0)]));
    }

    [Fact]
    public void ReconstructionOfExactDecompositionIsZero()
    {
        var stack = new LayerStack(RgbaImage.Filled(16, 16, 10, 200, 30, 255), TestImages.Rect(16, 16, 3, 3, 9, 9, 255, 255, 0, 128));
        var input = stack.FlattenOnWhite();
        double e = StackMetrics.ReconstructionL1(stack.Images.Select(P).ToList(), LayerPlanes.RgbPlane(input));
        Assert.True(e < 0.5 / 255, $"error {e} exceeds quantisation");
    }
}
