namespace StableLayers.Core.Imaging;

public static class ImageShift
{
    /// <summary>The image moved by (dx, dy) pixels on the same canvas; uncovered pixels are transparent.</summary>
    public static RgbaImage Shift(RgbaImage src, int dx, int dy)
    {
        ArgumentNullException.ThrowIfNull(src);
        var dst = new RgbaImage(src.Width, src.Height);
        for (int y = 0; y < src.Height; y++)
        {
            int sy = y - dy;
            if ((uint)sy >= (uint)src.Height)
            {
                continue;
            }

            for (int x = 0; x < src.Width; x++)
            {
                int sx = x - dx;
                if ((uint)sx < (uint)src.Width)
                {
                    Array.Copy(src.Pixels, ((sy * src.Width) + sx) * 4, dst.Pixels, ((y * src.Width) + x) * 4, 4);
                }
            }
        }

        return dst;
    }
}
