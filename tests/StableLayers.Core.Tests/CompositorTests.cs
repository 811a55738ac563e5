using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;

namespace StableLayers.Core.Tests;

public class CompositorTests
{
    [Fact]
    public void HalfTransparentRedOverBlueMixesEvenly()
    {
        var blue = RgbaImage.Filled(1, 1, 0, 0, 255, 255);
        var red = RgbaImage.Filled(1, 1, 255, 0, 0, 128);
        var c = new LayerStack(blue, red).Composite().Pixels;
        float a = 128 / 255f;
        Assert.Equal(Compositor.ToByte(a), c[0]);
        Assert.Equal(0, c[1]);
        Assert.Equal(Compositor.ToByte(1 - a), c[2]);
        Assert.Equal(255, c[3]);
    }

    [Fact]
    public void TwoHalfLayersOverNothingGiveStraightAlphaResult()
    {
        // a_out = a1 + a2(1 - a1) = 0.75 for two 0.5 layers; colour un-premultiplied back.
        var l1 = RgbaImage.Filled(1, 1, 0, 0, 0, 0);
        var l2 = RgbaImage.Filled(1, 1, 200, 100, 0, 255);
        l2.Pixels[3] = 0;
        var half1 = RgbaImage.Filled(1, 1, 255, 255, 255, 127);
        var half2 = RgbaImage.Filled(1, 1, 0, 0, 0, 127);
        var c = new LayerStack(l1, l2, half1, half2).Composite().Pixels;
        float a = 127 / 255f;
        float aOut = a + (a * (1 - a));
        Assert.Equal(Compositor.ToByte(aOut), c[3]);
        // white contributes a*(1-a) premultiplied, black contributes 0.
        Assert.Equal(Compositor.ToByte(a * (1 - a) / aOut), c[0]);
    }

    [Fact]
    public void FlattenOnWhiteOfTransparentIsWhite()
    {
        var flat = new LayerStack(RgbaImage.Filled(2, 2, 0, 0, 0, 0)).FlattenOnWhite();
        Assert.All(flat.Pixels, b => Assert.Equal(255, b));
    }

    [Fact]
    public void ChwSignedRoundTripIsExact()
    {
        var img = new RgbaImage(3, 2);
        new Random(5).NextBytes(img.Pixels);
        var chw = img.ToChwSigned();
        Assert.InRange(chw.Min(), -1f, 1f);
        Assert.InRange(chw.Max(), -1f, 1f);
        Assert.True(RgbaImage.FromChwSigned(chw, 3, 2).PixelsEqual(img));
        Assert.Equal((img.Pixels[4 * 1] / 127.5f) - 1f, chw[1]); // R plane, pixel 1
        Assert.Equal((img.Pixels[3] / 127.5f) - 1f, chw[3 * 6]); // A plane, pixel 0
    }

    [Fact]
    public void MismatchedLayerSizesAreRejected()
    {
        Assert.Throws<ArgumentException>(() => new LayerStack(new RgbaImage(2, 2), new RgbaImage(3, 2)));
    }
}
