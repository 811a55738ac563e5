using StableLayers.Core.Layers;

namespace StableLayers.Core.Imaging;

/// <summary>
/// Resampling of straight-alpha RGBA images. Filtering happens on premultiplied colour (otherwise the
/// colour of transparent pixels bleeds into edges), with a triangle kernel widened by the scale factor when
/// shrinking (antialiased, like PIL's bilinear), separably, in float; one rounding at the end.
/// </summary>
public static class ImageResize
{
    public static RgbaImage Resize(RgbaImage src, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(src);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        if (width == src.Width && height == src.Height)
        {
            return src.Clone();
        }

        int sw = src.Width, sh = src.Height;
        var premul = new float[sw * sh * 4];
        for (int i = 0; i < premul.Length; i += 4)
        {
            float a = src.Pixels[i + 3] / 255f;
            premul[i] = src.Pixels[i] / 255f * a;
            premul[i + 1] = src.Pixels[i + 1] / 255f * a;
            premul[i + 2] = src.Pixels[i + 2] / 255f * a;
            premul[i + 3] = a;
        }

        // Horizontal then vertical pass.
        var horizontal = new float[width * sh * 4];
        var wx = Weights(sw, width);
        for (int y = 0; y < sh; y++)
        {
            for (int x = 0; x < width; x++)
            {
                var (start, w) = wx[x];
                int o = ((y * width) + x) * 4;
                for (int k = 0; k < w.Length; k++)
                {
                    int s = ((y * sw) + start + k) * 4;
                    for (int c = 0; c < 4; c++)
                    {
                        horizontal[o + c] += w[k] * premul[s + c];
                    }
                }
            }
        }

        var wy = Weights(sh, height);
        var dst = new RgbaImage(width, height);
        Span<float> px = stackalloc float[4];
        for (int y = 0; y < height; y++)
        {
            var (start, w) = wy[y];
            for (int x = 0; x < width; x++)
            {
                px.Clear();
                for (int k = 0; k < w.Length; k++)
                {
                    int s = (((start + k) * width) + x) * 4;
                    for (int c = 0; c < 4; c++)
                    {
                        px[c] += w[k] * horizontal[s + c];
                    }
                }

                int o = ((y * width) + x) * 4;
                float a = Math.Clamp(px[3], 0f, 1f);
                byte ab = Compositor.ToByte(a);
                if (ab == 0)
                {
                    continue;
                }

                for (int c = 0; c < 3; c++)
                {
                    dst.Pixels[o + c] = Compositor.ToByte(px[c] / a);
                }

                dst.Pixels[o + 3] = ab;
            }
        }

        return dst;
    }

    /// <summary>For each output index: first source index and normalised kernel weights.</summary>
    private static (int Start, float[] Weights)[] Weights(int srcSize, int dstSize)
    {
        double scale = (double)srcSize / dstSize;
        double support = Math.Max(1.0, scale);
        var result = new (int, float[])[dstSize];
        for (int i = 0; i < dstSize; i++)
        {
            double center = ((i + 0.5) * scale) - 0.5;
            int lo = Math.Max(0, (int)Math.Floor(center - support + 1e-9));
            int hi = Math.Min(srcSize - 1, (int)Math.Ceiling(center + support - 1e-9));
            var w = new float[hi - lo + 1];
            double total = 0;
            for (int j = lo; j <= hi; j++)
            {
                double t = Math.Max(0, 1 - (Math.Abs(j - center) / support));
                w[j - lo] = (float)t;
                total += t;
            }

            if (total <= 0)
            {
                // Only when the kernel falls entirely between samples at the border: take the nearest one.
                int nearest = Math.Clamp((int)Math.Round(center), 0, srcSize - 1);
                result[i] = (nearest, [1f]);
                continue;
            }

            for (int k = 0; k < w.Length; k++)
            {
                w[k] = (float)(w[k] / total);
            }

            result[i] = (lo, w);
        }

        return result;
    }
}
