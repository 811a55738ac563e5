using StableLayers.Core.Imaging;

namespace StableLayers.Metrics.LayerD;

/// <summary>
/// One layer as LayerD's evaluation sees it (an 8-bit RGBA PIL image), with the bounding box of its
/// alpha &gt; 0 pixels so that pair metrics, overlap tests and merges only visit pixels that can matter.
/// Pixels are never modified after construction; <see cref="Id"/> keys the per-evaluation caches.
/// </summary>
internal sealed class LayerDImage
{
    public LayerDImage(int id, int width, int height, byte[] pixels)
    {
        Id = id;
        Width = width;
        Height = height;
        Pixels = pixels;
        int x0 = width, y0 = height, x1 = 0, y1 = 0;
        for (int y = 0; y < height; y++)
        {
            int row = y * width * 4;
            int first = -1, last = -1;
            for (int x = 0; x < width; x++)
            {
                if (pixels[row + (x * 4) + 3] != 0)
                {
                    first = x;
                    break;
                }
            }

            if (first < 0)
            {
                continue;
            }

            for (int x = width - 1; x >= first; x--)
            {
                if (pixels[row + (x * 4) + 3] != 0)
                {
                    last = x;
                    break;
                }
            }

            x0 = Math.Min(x0, first);
            x1 = Math.Max(x1, last + 1);
            y0 = Math.Min(y0, y);
            y1 = y + 1;
        }

        if (x1 <= x0)
        {
            x0 = y0 = x1 = y1 = 0;
        }

        X0 = x0;
        Y0 = y0;
        X1 = x1;
        Y1 = y1;
    }

    /// <summary>A layer whose alpha &gt; 0 bounding box is already known (a merge: the union of its inputs' boxes).</summary>
    public LayerDImage(int id, int width, int height, byte[] pixels, int x0, int y0, int x1, int y1)
    {
        Id = id;
        Width = width;
        Height = height;
        Pixels = pixels;
        (X0, Y0, X1, Y1) = x1 <= x0 ? (0, 0, 0, 0) : (x0, y0, x1, y1);
    }

    public int Id { get; }

    public int Width { get; }

    public int Height { get; }

    /// <summary>RGBA, straight alpha, read-only by convention.</summary>
    public byte[] Pixels { get; }

    /// <summary>Bounding box [X0,X1) x [Y0,Y1) of the alpha &gt; 0 pixels; empty (all zero) for a fully transparent layer.</summary>
    public int X0 { get; }

    public int Y0 { get; }

    public int X1 { get; }

    public int Y1 { get; }

    public bool IsEmpty => X1 <= X0;

    public static LayerDImage From(int id, RgbaImage image) => new(id, image.Width, image.Height, image.Pixels);
}
