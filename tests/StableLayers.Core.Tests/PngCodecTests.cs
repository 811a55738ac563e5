using StableLayers.Core;
using StableLayers.Core.Imaging;
using StableLayers.TestSupport;

namespace StableLayers.Core.Tests;

public class PngCodecTests
{
    private static RgbaImage RandomImage(int w, int h, int seed)
    {
        var rng = new Random(seed);
        var img = new RgbaImage(w, h);
        rng.NextBytes(img.Pixels);
        return img;
    }

    [Fact]
    public void RgbaRoundTripIsExactIncludingColourUnderZeroAlpha()
    {
        var img = RandomImage(37, 23, 1);
        img.Pixels[3] = 0; // colour under alpha 0 must survive: straight alpha, no premultiplication
        img.Pixels[0] = 200;
        var back = PngCodec.Decode(PngCodec.Encode(img), "mem");
        Assert.True(back.PixelsEqual(img));
    }

    [Fact]
    public void RgbEncodingDropsAlphaAndDecodesOpaque()
    {
        var img = RandomImage(8, 5, 2);
        var back = PngCodec.Decode(PngCodec.EncodeRgb(img), "mem");
        for (int i = 0; i < img.Pixels.Length; i += 4)
        {
            Assert.Equal(img.Pixels[i], back.Pixels[i]);
            Assert.Equal(img.Pixels[i + 2], back.Pixels[i + 2]);
            Assert.Equal(255, back.Pixels[i + 3]);
        }
    }

    [Fact]
    public void GreyPngDecodesToEqualChannels()
    {
        var grey = new byte[] { 0, 17, 128, 255, 3, 99 };
        var img = PngCodec.Decode(PngWriter.Encode(3, 2, PngColorType.Grey, 8, grey), "grey.png");
        for (int i = 0; i < grey.Length; i++)
        {
            Assert.Equal(grey[i], img.Pixels[i * 4]);
            Assert.Equal(grey[i], img.Pixels[(i * 4) + 1]);
            Assert.Equal(grey[i], img.Pixels[(i * 4) + 2]);
            Assert.Equal(255, img.Pixels[(i * 4) + 3]);
        }
    }

    [Fact]
    public void GreyAlphaPngKeepsAlpha()
    {
        var ga = new byte[] { 10, 0, 20, 128, 30, 255, 40, 7 };
        var img = PngCodec.Decode(PngWriter.Encode(2, 2, PngColorType.GreyAlpha, 8, ga), "ga.png");
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(ga[i * 2], img.Pixels[i * 4]);
            Assert.Equal(ga[(i * 2) + 1], img.Pixels[(i * 4) + 3]);
        }
    }

    [Fact]
    public void PalettePngWithTransparencyDecodesToPaletteColours()
    {
        byte[] palette = [255, 0, 0, 0, 255, 0, 10, 20, 30];
        byte[] alpha = [255, 128, 0];
        byte[] idx = [0, 1, 2, 1];
        var img = PngCodec.Decode(PngWriter.Encode(2, 2, PngColorType.Palette, 8, idx, palette, alpha), "pal.png");
        for (int i = 0; i < idx.Length; i++)
        {
            int e = idx[i];
            Assert.Equal(alpha[e], img.Pixels[(i * 4) + 3]);
            if (alpha[e] != 0)
            {
                Assert.Equal(palette[e * 3], img.Pixels[i * 4]);
                Assert.Equal(palette[(e * 3) + 1], img.Pixels[(i * 4) + 1]);
            }
        }
    }

    [Fact]
    public void SixteenBitPngIsReducedToNearestEightBitValue()
    {
        // 16-bit samples v map to round(v * 255 / 65535); v = 257*k is exactly k.
        ushort[] values = [0, 257 * 100, 65535, 257 * 37, 257 * 200, 257 * 255, 257, 257 * 2];
        var bytes = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++)
        {
            bytes[i * 2] = (byte)(values[i] >> 8);
            bytes[(i * 2) + 1] = (byte)values[i];
        }

        var img = PngCodec.Decode(PngWriter.Encode(2, 1, PngColorType.Rgba, 16, bytes), "16.png");
        for (int i = 0; i < values.Length; i++)
        {
            Assert.Equal((byte)Math.Round(values[i] * 255.0 / 65535.0), img.Pixels[i]);
        }
    }

    [Fact]
    public void TruncatedPngIsRejectedWithFileName()
    {
        var bytes = PngCodec.Encode(RandomImage(64, 64, 3));
        using var dir = new TempDir();
        var path = dir.File("cut.png");
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<BadInputException>(() => PngCodec.Read(path));
        Assert.Contains("cut.png", e.Message);
    }

    [Fact]
    public void GarbageIsRejectedWithFileName()
    {
        using var dir = new TempDir();
        var path = dir.File("junk.png");
        File.WriteAllText(path, "this is not a png");
        var e = Assert.Throws<BadInputException>(() => PngCodec.Read(path));
        Assert.Contains("junk.png", e.Message);
    }

    [Fact]
    public void ImageOverPixelLimitIsRejectedBeforeDecoding()
    {
        var bytes = PngCodec.Encode(RgbaImage.Filled(100, 100, 1, 2, 3, 4));
        var e = Assert.Throws<BadInputException>(() => PngCodec.Decode(bytes, "big.png", maxPixels: 5000));
        Assert.Contains("big.png", e.Message);
        Assert.Contains("over the limit", e.Message);
        Assert.Equal(100, PngCodec.Decode(bytes, "ok.png", maxPixels: 10000).Width);
    }
}
