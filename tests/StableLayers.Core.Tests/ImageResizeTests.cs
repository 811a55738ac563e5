using StableLayers.Core.Imaging;

namespace StableLayers.Core.Tests;

public class ImageResizeTests
{
    [Fact]
    public void UniformImageStaysUniformAtAnySize()
    {
        var img = RgbaImage.Filled(37, 23, 10, 200, 30, 128);
        foreach (var (w, h) in new[] { (10, 5), (80, 90), (37, 1) })
        {
            var r = ImageResize.Resize(img, w, h);
            for (int i = 0; i < r.Pixels.Length; i += 4)
            {
                Assert.Equal([10, 200, 30, 128], r.Pixels[i..(i + 4)]);
            }
        }
    }

    [Fact]
    public void ColourUnderTransparentPixelsDoesNotBleed()
    {
        // Left half opaque white, right half transparent *black*: shrinking must keep edge colour white.
        var img = new RgbaImage(8, 2);
        for (int y = 0; y < 2; y++)
        {
            for (int x = 0; x < 4; x++)
            {
                int i = ((y * 8) + x) * 4;
                img.Pixels[i] = img.Pixels[i + 1] = img.Pixels[i + 2] = img.Pixels[i + 3] = 255;
            }
        }

        var r = ImageResize.Resize(img, 4, 1);
        int edge = 1 * 4;
        Assert.InRange(r.Pixels[edge + 3], 1, 254);
        Assert.Equal(255, r.Pixels[edge]);
    }

    [Fact]
    public void DownscaleByTwoUsesTheWidenedTriangleKernel()
    {
        var img = new RgbaImage(4, 1);
        byte[] values = [0, 100, 200, 50];
        for (int x = 0; x < 4; x++)
        {
            img.Pixels[(x * 4) + 3] = 255;
            img.Pixels[x * 4] = values[x];
        }

        // Output 0 is centred at source 0.5 with support 2: weights .75, .75, .25 on sources 0..2.
        var r = ImageResize.Resize(img, 2, 1);
        Assert.Equal(Math.Round(((0 * .75) + (100 * .75) + (200 * .25)) / 1.75), r.Pixels[0], 0);
        Assert.Equal(Math.Round(((100 * .25) + (200 * .75) + (50 * .75)) / 1.75), r.Pixels[4], 0);
    }
}

public class LayerGridTests
{
    [Fact]
    public void GridHasOneRowPerSampleAndACellPerLayerPlusInput()
    {
        var stack = new StableLayers.Core.Layers.LayerStack(RgbaImage.Filled(20, 10, 255, 0, 0, 255), new RgbaImage(20, 10));
        var grid = StableLayers.Core.Layers.LayerGrid.Render([(null, stack), (null, stack)], cell: 16, gap: 2);
        Assert.Equal((3 * 18) + 2, grid.Width);
        Assert.Equal((2 * 18) + 2, grid.Height);
        Assert.True(grid.IsOpaque());
        // The transparent layer's cell shows the checkerboard (grey and white), the red layer's cell is red.
        int Px(int x, int y) => ((y * grid.Width) + x) * 4;
        Assert.Equal(255, grid.Pixels[Px(20 + 8, 2 + 8)]);
        Assert.Equal(0, grid.Pixels[Px(20 + 8, 2 + 8) + 1]);
        Assert.Equal(204, grid.Pixels[Px(38 + 1, 2 + 1)]);
    }
}
