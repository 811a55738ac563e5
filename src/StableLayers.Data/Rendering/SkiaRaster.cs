using SkiaSharp;
using StableLayers.Core.Imaging;

namespace StableLayers.Data.Rendering;

/// <summary>
/// Moves pixels between Skia and <see cref="RgbaImage"/>. Skia rasterises premultiplied (antialiasing and
/// blending are only correct there), so drawing happens on premultiplied bitmaps and the result is converted
/// to straight alpha once, with rounding.
/// </summary>
internal static class SkiaRaster
{
    /// <summary>A transparent (all zero) premultiplied RGBA bitmap to draw on.</summary>
    public static SKBitmap NewCanvasBitmap(int width, int height)
    {
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        bitmap.Erase(SKColors.Transparent);
        return bitmap;
    }

    /// <summary>Premultiplied RGBA bitmap to straight alpha: c = round(c' * 255 / a); fully transparent pixels become 0,0,0,0.</summary>
    public static RgbaImage ToStraightRgba(SKBitmap bitmap)
    {
        if (bitmap.ColorType != SKColorType.Rgba8888 || bitmap.AlphaType != SKAlphaType.Premul)
        {
            throw new ArgumentException($"expected Rgba8888 premultiplied, got {bitmap.ColorType} {bitmap.AlphaType}", nameof(bitmap));
        }

        var src = bitmap.GetPixelSpan();
        var image = new RgbaImage(bitmap.Width, bitmap.Height);
        var dst = image.Pixels;
        for (int i = 0; i < dst.Length; i += 4)
        {
            int a = src[i + 3];
            if (a == 0)
            {
                continue;
            }

            if (a == 255)
            {
                dst[i] = src[i];
                dst[i + 1] = src[i + 1];
                dst[i + 2] = src[i + 2];
            }
            else
            {
                int half = a / 2;
                dst[i] = (byte)Math.Min(255, ((src[i] * 255) + half) / a);
                dst[i + 1] = (byte)Math.Min(255, ((src[i + 1] * 255) + half) / a);
                dst[i + 2] = (byte)Math.Min(255, ((src[i + 2] * 255) + half) / a);
            }

            dst[i + 3] = (byte)a;
        }

        return image;
    }

    /// <summary>A Skia image holding a copy of straight-alpha pixels; Skia premultiplies when it samples.</summary>
    public static SKImage ToSkImage(RgbaImage image)
    {
        var info = new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        return SKImage.FromPixelCopy(info, image.Pixels)
            ?? throw new InvalidOperationException($"Skia could not wrap a {image.Width}x{image.Height} image");
    }

    /// <summary>Fraction of pixels with alpha &gt; 0.1 (byte &gt;= 26), the coverage used by the blank-layer metric.</summary>
    public static double Coverage(RgbaImage image)
    {
        var p = image.Pixels;
        int covered = 0;
        for (int i = 3; i < p.Length; i += 4)
        {
            if (p[i] >= 26)
            {
                covered++;
            }
        }

        return covered / (double)image.PixelCount;
    }
}
