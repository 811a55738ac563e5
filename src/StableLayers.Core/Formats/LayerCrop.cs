using StableLayers.Core.Imaging;

namespace StableLayers.Core.Formats;

/// <summary>A pixel rectangle; empty when <see cref="Width"/> or <see cref="Height"/> is 0.</summary>
public readonly record struct PixelRect(int X, int Y, int Width, int Height)
{
    public bool IsEmpty => Width <= 0 || Height <= 0;
}

/// <summary>Cropping helpers shared by the layered-file writers, which store each layer as its bounding box plus an offset.</summary>
public static class LayerCrop
{
    /// <summary>
    /// The smallest rectangle holding every pixel that is not all-zero bytes. For clean layers this is the
    /// non-transparent bounding box; counting colour under alpha 0 as content keeps the round trip byte-exact.
    /// </summary>
    public static PixelRect ContentBounds(RgbaImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var px = MemoryMarshalInts(image);
        int w = image.Width, h = image.Height;
        int minX = w, minY = h, maxX = -1, maxY = -1;
        for (int y = 0; y < h; y++)
        {
            var row = px.Slice(y * w, w);
            int first = row.IndexOfAnyExcept(0u);
            if (first < 0)
            {
                continue;
            }

            int last = row.LastIndexOfAnyExcept(0u);
            minY = Math.Min(minY, y);
            maxY = y;
            minX = Math.Min(minX, first);
            maxX = Math.Max(maxX, last);
        }

        return maxY < 0 ? new PixelRect(0, 0, 0, 0) : new PixelRect(minX, minY, maxX - minX + 1, maxY - minY + 1);
    }

    /// <summary>Copies <paramref name="rect"/> (which must be non-empty and inside the image) out of <paramref name="image"/>.</summary>
    public static RgbaImage Crop(RgbaImage image, PixelRect rect)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (rect.IsEmpty || rect.X < 0 || rect.Y < 0 || rect.X + rect.Width > image.Width || rect.Y + rect.Height > image.Height)
        {
            throw new ArgumentOutOfRangeException(nameof(rect), $"{rect} is empty or outside {image.Width}x{image.Height}");
        }

        var dst = new RgbaImage(rect.Width, rect.Height);
        int n = rect.Width * 4;
        for (int y = 0; y < rect.Height; y++)
        {
            image.Pixels.AsSpan((((rect.Y + y) * image.Width) + rect.X) * 4, n).CopyTo(dst.Pixels.AsSpan(y * n, n));
        }

        return dst;
    }

    private static ReadOnlySpan<uint> MemoryMarshalInts(RgbaImage image) =>
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, uint>(image.Pixels);
}
