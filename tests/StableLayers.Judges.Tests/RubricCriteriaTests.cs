using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges.Rubric;
using StableLayers.Metrics;
using StableLayers.TestSupport;

namespace StableLayers.Judges.Tests;

/// <summary>Each criterion on tiny hand-made layers whose right answer follows from its formula.</summary>
public class RubricCriteriaTests
{
    private const int S = 40;

    [Fact]
    public void CrispOpaqueShapesAreCleanAndDefectsCountSeparately()
    {
        var clean = Rect(10, 10, 20, 20, 200, 30, 30, 255);
        Assert.Equal(new AlphaTerms(0, 0, 0, 1), Alpha(Opaque(), clean));

        var half = Rect(10, 10, 20, 20, 200, 30, 30, 128);
        var t = Alpha(Opaque(), half);
        Assert.Equal(1, t.SoftShare, 12);
        Assert.Equal(2.0 / 3, t.Score, 12);

        var specks = clean.Clone();
        Set(specks, 2, 2, 255);
        Set(specks, 36, 3, 255);
        var ts = Alpha(Opaque(), specks);
        Assert.Equal(2.0 / (400 + 2), ts.SpeckShare, 9); // two 1-px components against a 400-px square
        Assert.Equal(0, ts.HazeShare);

        var hazy = clean.Clone();
        Set(hazy, 2, 2, 5);   // far from the square: haze
        Set(hazy, 9, 15, 5);  // touching the square: an edge, not haze
        var th = Alpha(Opaque(), hazy);
        Assert.Equal(1.0 / ((S * S) - 400), th.HazeShare, 12);
        Assert.Equal(0, th.SpeckShare);
    }

    [Fact]
    public void ALayerRepeatingTheOneBelowIsRedundant()
    {
        var bg = Opaque();
        var a = Rect(5, 5, 15, 15, 10, 200, 10, 255);
        var b = Rect(22, 22, 12, 12, 10, 10, 200, 255);
        var distinct = Separation(bg, a, b);
        Assert.Equal(new SeparationTerms(0, 0, 1), distinct);

        var dup = Separation(bg, a, a);
        Assert.Equal(0.5, dup.Redundancy, 6);   // the upper copy is wholly redundant, the lower one not at all
        Assert.Equal(0.5, dup.Overlap, 6);      // half of the foreground mass is hidden
        Assert.Equal((1 - (0.25 * 0.5)) * 0.5, dup.Score, 6);

        // Nothing separated: the foreground is empty.
        var empty = new RgbaImage(S, S);
        Assert.Equal(0, Separation(bg, empty).Score);
    }

    [Fact]
    public void BackgroundIsJudgedUnderTheForeground()
    {
        var fg = Rect(10, 10, 20, 20, 200, 30, 30, 255);
        var input = new LayerStack(Opaque(), fg).FlattenOnWhite();
        var inputPlane = LayerPlanes.RgbPlane(input);

        var good = BackgroundCriterion.Measure(Planes(Opaque(), fg), inputPlane);
        Assert.Equal(new BackgroundTerms(1, 1, 1, 1, 1), good);

        // Layer 0 still holds the square: busier, wrong colour, identical to the input under the foreground.
        var kept = BackgroundCriterion.Measure(Planes(input, fg), inputPlane);
        Assert.Equal(0, kept.Distinctness, 12);
        Assert.True(kept.Smoothness < 0.9, $"smoothness {kept.Smoothness}");
        Assert.True(kept.Consistency < 0.5, $"consistency {kept.Consistency}");
        Assert.True(kept.Score < 0.5);

        // A hole in layer 0 (transparent under the square) is incomplete.
        var holed = Opaque();
        for (int y = 10; y < 30; y++)
        {
            for (int x = 10; x < 30; x++)
            {
                Set(holed, x, y, 0);
            }
        }

        Assert.Equal(1 - (400.0 / (S * S)), BackgroundCriterion.Measure(Planes(holed, fg), inputPlane).OpaqueShare, 12);
    }

    [Fact]
    public void DistributionRewardsEvenUseOfTheLayers()
    {
        var bg = Opaque();
        var halfCanvas = Rect(0, 0, S, S / 2, 10, 10, 10, 255);
        var planes = Planes(bg, halfCanvas);
        var q = LayerQuality.Assess(planes, null);
        Assert.Equal(1, DistributionCriterion.Measure(planes, q).Score, 9);

        var blank = new RgbaImage(S, S);
        var p3 = Planes(bg, halfCanvas, blank);
        var d3 = DistributionCriterion.Measure(p3, LayerQuality.Assess(p3, null));
        Assert.Equal(1, d3.Blank);
        Assert.Equal(Math.Min(1, StackMetrics.Evenness(p3)!.Value / DistributionCriterion.SpreadEvenness) * 0.5, d3.Score, 12);

        // A small object on a background is spread enough below J = 0.1 only in proportion, and a layer under 2%
        // coverage is only partly filled.
        var dot = Rect(0, 0, 3, 3, 10, 10, 10, 255);
        var small = Planes(bg, dot);
        double j = StackMetrics.Evenness(small)!.Value;
        Assert.True(j < DistributionCriterion.SpreadEvenness);
        var ds = DistributionCriterion.Measure(small, LayerQuality.Assess(small, null));
        Assert.Equal(0, ds.Blank);
        Assert.Equal(9.0 / (S * S) / DistributionCriterion.FilledCoverage, ds.Fill, 12);
        Assert.Equal(j / DistributionCriterion.SpreadEvenness * ds.Fill, ds.Score, 12);
    }

    [Fact]
    public void DistributionFallsSteadilyAsALayerShrinksTowardsBlankNotOnlyAtTheBlankThreshold()
    {
        // Three foreground layers; the last one shrinks from 6x6 px (3.5%) to nothing. The score must never rise and
        // must already fall above the blank threshold (0.5%), so a policy shrinking a layer pays before it is blank.
        var bg = Opaque();
        var a = Rect(0, 0, S, S / 4, 10, 10, 10, 255);
        var b = Rect(0, S / 2, S, S / 4, 200, 10, 10, 255);
        var scores = new List<(double Coverage, double Score, int Blank)>();
        for (int side = 6; side >= 0; side--)
        {
            var c = side == 0 ? new RgbaImage(S, S) : Rect(S / 2, S / 4 + 1, side, side, 10, 200, 10, 255);
            var p = Planes(bg, a, b, c);
            var q = LayerQuality.Assess(p, null);
            scores.Add((side * side / (double)(S * S), DistributionCriterion.Measure(p, q).Score, q.Blank));
        }

        for (int i = 1; i < scores.Count; i++)
        {
            Assert.True(scores[i].Score <= scores[i - 1].Score, $"score rose as the layer shrank: {scores[i - 1]} -> {scores[i]}");
        }

        var notBlankButSmall = scores.Where(x => x.Blank == 0 && x.Coverage < DistributionCriterion.FilledCoverage).ToList();
        Assert.True(notBlankButSmall.Count >= 2);
        Assert.True(notBlankButSmall[^1].Score < notBlankButSmall[0].Score);
        Assert.True(scores[^1].Score < scores[0].Score * 0.75);
    }

    [Fact]
    public void ValidityFallsWithReconstructionErrorAndGlazedLayers()
    {
        var bg = Opaque();
        var fg = Rect(10, 10, 20, 20, 200, 30, 30, 255);
        var input = LayerPlanes.RgbPlane(new LayerStack(bg, fg).FlattenOnWhite());
        var exact = Planes(bg, fg);
        Assert.Equal(1, ValidityCriterion.Measure(exact, input, LayerQuality.Assess(exact, input)).Score, 6);

        var missing = Planes(bg, new RgbaImage(S, S));
        var m = ValidityCriterion.Measure(missing, input, LayerQuality.Assess(missing, input));
        Assert.Equal(1 / (1 + (m.ReconstructionL1 / ValidityCriterion.ReconstructionScale)), m.Score, 12);
        Assert.True(m.Score < 0.9);

        var wash = Rect(0, 0, S, S, 0, 0, 0, 40);
        var glazed = Planes(bg, fg, wash);
        var g = ValidityCriterion.Measure(glazed, input, LayerQuality.Assess(glazed, input));
        Assert.Equal(1, g.Glazed);
        Assert.Equal(1 / (1 + (g.ReconstructionL1 / ValidityCriterion.ReconstructionScale)) / (1 + (g.InventedError / ValidityCriterion.InventedScale)) * 0.75, g.Score, 12);
    }

    [Fact]
    public void InventedContentCostsAsMuchAsItIsWrongWhateverTheCanvasAround()
    {
        var bg = Opaque();
        var fg = Rect(10, 10, 20, 20, 200, 30, 30, 255);
        var input = LayerPlanes.RgbPlane(new LayerStack(bg, fg).FlattenOnWhite());
        var exact = Planes(bg, fg);
        Assert.Equal(0, ValidityCriterion.InventedColourError(exact, input), 6);

        // The right shape in the wrong colour: the error is the colour difference, not diluted by the background.
        var recoloured = Planes(bg, Rect(10, 10, 20, 20, 30, 200, 30, 255));
        Assert.Equal((170 + 170) / 3.0 / 255, ValidityCriterion.InventedColourError(recoloured, input), 3);

        // A layer hidden under an exact copy above it is not visible, so only the top layer counts.
        var hidden = Planes(bg, Rect(10, 10, 20, 20, 30, 200, 30, 255), fg);
        Assert.Equal(0, ValidityCriterion.InventedColourError(hidden, input), 6);
        var v = ValidityCriterion.Measure(recoloured, input, LayerQuality.Assess(recoloured, input));
        Assert.True(v.Score < ValidityCriterion.Measure(exact, input, LayerQuality.Assess(exact, input)).Score);
    }

    // rubric/v2 averaged the per-layer terms over the layers that show something, so a blank layer was free in each
    // of them: [bg, clean square, blank] scored a perfect matte and no redundancy, and it did not count in the mean
    // invented-colour error of a wrongly coloured square beside it. One test per term.
    [Fact]
    public void ABlankForegroundLayerHasTheWorstMatte()
    {
        var blank = new RgbaImage(S, S);
        var a = Rect(5, 5, 15, 15, 10, 200, 10, 255);
        Assert.Equal(1, Alpha(Opaque(), a).Score, 12);
        Assert.Equal(0.5, Alpha(Opaque(), a, blank).Score, 12);
    }

    [Fact]
    public void ABlankForegroundLayerIsWhollyRedundant()
    {
        var blank = new RgbaImage(S, S);
        var a = Rect(5, 5, 15, 15, 10, 200, 10, 255);
        Assert.Equal(0, Separation(Opaque(), a).Redundancy, 12);
        Assert.Equal(0.5, Separation(Opaque(), a, blank).Redundancy, 12);
    }

    [Fact]
    public void ABlankForegroundLayerCountsInTheInventedColourMean()
    {
        var bg = Opaque();
        var fg = Rect(10, 10, 20, 20, 200, 30, 30, 255);
        var input = LayerPlanes.RgbPlane(new LayerStack(bg, fg).FlattenOnWhite());
        var recoloured = Rect(10, 10, 20, 20, 30, 200, 30, 255);
        double one = ValidityCriterion.InventedColourError(Planes(bg, recoloured), input);
        Assert.True(one > 0.3);
        Assert.Equal(one / 2, ValidityCriterion.InventedColourError(Planes(bg, recoloured, new RgbaImage(S, S)), input), 12);
    }

    [Fact]
    public void ACandidateOfTheWrongSizeIsRejected()
    {
        var input = Opaque();
        Assert.Throws<ArgumentException>(() => RubricCriteria.Evaluate(input, new LayerStack(RgbaImage.Filled(S, S + 1, 1, 2, 3, 255))));
    }

    private static RgbaImage Opaque() => RgbaImage.Filled(S, S, 240, 235, 220, 255);

    private static RgbaImage Rect(int x0, int y0, int w, int h, byte r, byte g, byte b, byte a) =>
        TestImages.Rect(S, S, x0, y0, x0 + w, y0 + h, r, g, b, a);

    private static void Set(RgbaImage img, int x, int y, byte alpha)
    {
        int o = ((y * img.Width) + x) * 4;
        img.Pixels[o] = 90;
        img.Pixels[o + 1] = 90;
        img.Pixels[o + 2] = 90;
        img.Pixels[o + 3] = alpha;
    }

    private static LayerStack Stack(params RgbaImage[] layers) => new(layers);

    private static AlphaTerms Alpha(params RgbaImage[] layers)
    {
        var p = Planes(layers);
        return AlphaCriterion.Measure(p, LayerQuality.Assess(p, null));
    }

    private static SeparationTerms Separation(params RgbaImage[] layers)
    {
        var p = Planes(layers);
        return SeparationCriterion.Measure(Stack(layers), p, LayerQuality.Assess(p, null));
    }

    private static LayerPlanes[] Planes(params RgbaImage[] layers) => layers.Select(LayerPlanes.From).ToArray();

    private static LayerPlanes Planes(RgbaImage layer) => LayerPlanes.From(layer);
}
