using StableLayers.Core.Imaging;

namespace StableLayers.Core.Layers;

/// <summary>
/// A contact sheet of decompositions: one row per sample, the input first, then each layer over a
/// checkerboard (so transparency is visible), every cell resized to the same square.
/// </summary>
public static class LayerGrid
{
    public static RgbaImage Render(IReadOnlyList<(RgbaImage? Input, LayerStack Stack)> rows, int cell = 96, int gap = 4)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Count == 0)
        {
            throw new ArgumentException("no rows", nameof(rows));
        }

        int columns = rows.Max(r => r.Stack.Count + 1);
        int width = (columns * (cell + gap)) + gap;
        int height = (rows.Count * (cell + gap)) + gap;
        var sheet = RgbaImage.Filled(width, height, 255, 255, 255, 255);
        for (int r = 0; r < rows.Count; r++)
        {
            var (input, stack) = rows[r];
            var first = input ?? stack.FlattenOnWhite();
            Blit(sheet, Fit(first, cell, checker: false), gap, gap + (r * (cell + gap)));
            for (int k = 0; k < stack.Count; k++)
            {
                Blit(sheet, Fit(stack[k], cell, checker: true), gap + ((k + 1) * (cell + gap)), gap + (r * (cell + gap)));
            }
        }

        return sheet;
    }

    private static RgbaImage Fit(RgbaImage image, int cell, bool checker)
    {
        double scale = Math.Min((double)cell / image.Width, (double)cell / image.Height);
        int w = Math.Max(1, (int)Math.Round(image.Width * scale));
        int h = Math.Max(1, (int)Math.Round(image.Height * scale));
        var resized = ImageResize.Resize(image, w, h);
        var background = new RgbaImage(cell, cell);
        for (int y = 0; y < cell; y++)
        {
            for (int x = 0; x < cell; x++)
            {
                byte v = checker && (((x / 8) + (y / 8)) % 2 == 0) ? (byte)204 : (byte)255;
                int i = ((y * cell) + x) * 4;
                background.Pixels[i] = background.Pixels[i + 1] = background.Pixels[i + 2] = v;
                background.Pixels[i + 3] = 255;
            }
        }

        var placed = new RgbaImage(cell, cell);
        int ox = (cell - w) / 2, oy = (cell - h) / 2;
        for (int y = 0; y < h; y++)
        {
            Array.Copy(resized.Pixels, y * w * 4, placed.Pixels, (((oy + y) * cell) + ox) * 4, w * 4);
        }

        return Compositor.Composite([background, placed]);
    }

    private static void Blit(RgbaImage dst, RgbaImage src, int x0, int y0)
    {
        for (int y = 0; y < src.Height; y++)
        {
            Array.Copy(src.Pixels, y * src.Width * 4, dst.Pixels, (((y0 + y) * dst.Width) + x0) * 4, src.Width * 4);
        }
    }
}
