namespace StableLayers.Judges.Rubric;

/// <summary>Small raster helpers for the rubric: square dilation and gradient magnitude.</summary>
internal static class Masks
{
    /// <summary>Square (Chebyshev) dilation by <paramref name="radius"/> px, via a summed-area table: O(pixels) for any radius.</summary>
    public static bool[] Dilate(bool[] mask, int w, int h, int radius)
    {
        int sw = w + 1;
        var sat = new int[sw * (h + 1)];
        for (int y = 0; y < h; y++)
        {
            int row = 0;
            for (int x = 0; x < w; x++)
            {
                row += mask[(y * w) + x] ? 1 : 0;
                sat[((y + 1) * sw) + x + 1] = sat[(y * sw) + x + 1] + row;
            }
        }

        var result = new bool[mask.Length];
        for (int y = 0; y < h; y++)
        {
            int y0 = Math.Max(0, y - radius), y1 = Math.Min(h, y + radius + 1);
            for (int x = 0; x < w; x++)
            {
                int x0 = Math.Max(0, x - radius), x1 = Math.Min(w, x + radius + 1);
                int sum = sat[(y1 * sw) + x1] - sat[(y0 * sw) + x1] - sat[(y1 * sw) + x0] + sat[(y0 * sw) + x0];
                result[(y * w) + x] = sum > 0;
            }
        }

        return result;
    }

    /// <summary>Per pixel: (|I(x+1,y) - I(x,y)| + |I(x,y+1) - I(x,y)|) averaged over RGB (0 differences past the border).</summary>
    public static float[] GradientMagnitude(float[] rgb, int w, int h)
    {
        var g = new float[w * h];
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                int i = (y * w) + x;
                int o = i * 3;
                float s = 0;
                if (x + 1 < w)
                {
                    s += MathF.Abs(rgb[o + 3] - rgb[o]) + MathF.Abs(rgb[o + 4] - rgb[o + 1]) + MathF.Abs(rgb[o + 5] - rgb[o + 2]);
                }

                if (y + 1 < h)
                {
                    int d = o + (w * 3);
                    s += MathF.Abs(rgb[d] - rgb[o]) + MathF.Abs(rgb[d + 1] - rgb[o + 1]) + MathF.Abs(rgb[d + 2] - rgb[o + 2]);
                }

                g[i] = s * (1f / 3f);
            }
        }

        return g;
    }
}
