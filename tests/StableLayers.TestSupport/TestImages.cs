using StableLayers.Core.Imaging;

namespace StableLayers.TestSupport;

/// <summary>Small synthetic images for unit tests.</summary>
public static class TestImages
{
    /// <summary>Uniform random bytes in every channel (alpha included), reproducible from <paramref name="seed"/>.</summary>
    public static RgbaImage Noise(int width, int height, int seed)
    {
        var image = new RgbaImage(width, height);
        new Random(seed).NextBytes(image.Pixels);
        return image;
    }

    /// <summary>A transparent width x height canvas with [x0, x1) x [y0, y1) filled with one RGBA colour.</summary>
    public static RgbaImage Rect(int width, int height, int x0, int y0, int x1, int y1, byte r, byte g, byte b, byte a)
    {
        var img = new RgbaImage(width, height);
        for (int y = y0; y < y1; y++)
        {
            for (int x = x0; x < x1; x++)
            {
                int i = ((y * width) + x) * 4;
                img.Pixels[i] = r;
                img.Pixels[i + 1] = g;
                img.Pixels[i + 2] = b;
                img.Pixels[i + 3] = a;
            }
        }

        return img;
    }
}
