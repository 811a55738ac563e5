using SkiaSharp;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;

namespace StableLayers.Judges.Vlm;

/// <summary>
/// Geometry of a calibration grid: <see cref="Rows"/> rows, each a label cell then
/// <see cref="Columns"/> layer cells of <see cref="Cell"/> x <see cref="Cell"/> pixels, with
/// <see cref="Gap"/>-pixel grey gutters around every cell.
/// </summary>
public sealed record GridLayout(int Rows, int Columns, int Cell)
{
    public static readonly (byte R, byte G, byte B) GutterColour = (128, 128, 128);

    public int Gap => Math.Max(2, Cell / 32);

    public int LabelWidth => Math.Max(24, Cell / 2);

    public int Width => Gap + LabelWidth + Gap + (Columns * (Cell + Gap));

    public int Height => Gap + (Rows * (Cell + Gap));

    public long Pixels => (long)Width * Height;

    /// <summary>Top-left corner and size of row <paramref name="row"/>'s label cell.</summary>
    public (int X, int Y, int W, int H) LabelRect(int row) => (Gap, Gap + (row * (Cell + Gap)), LabelWidth, Cell);

    /// <summary>Top-left corner of the cell holding layer <paramref name="column"/> (0 = background) of row <paramref name="row"/>.</summary>
    public (int X, int Y) CellOrigin(int row, int column) =>
        (Gap + LabelWidth + Gap + (column * (Cell + Gap)), Gap + (row * (Cell + Gap)));

    /// <summary>The most rows (at least 2 when possible, at most <paramref name="maxRows"/>) whose grid stays within <paramref name="maxPixels"/>.</summary>
    public static int RowsThatFit(int columns, int cell, long maxPixels, int maxRows)
    {
        int rows = 0;
        while (rows < maxRows && new GridLayout(rows + 1, columns, cell).Pixels <= maxPixels)
        {
            rows++;
        }

        return rows;
    }
}

/// <summary>Draws the labelled phase-2 grid: one row per candidate, label then its layers on white, background first.</summary>
public static class CalibrationGrid
{
    public static RgbaImage Render(IReadOnlyList<(string Label, LayerStack Stack)> rows, int cell)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Count == 0)
        {
            throw new ArgumentException("a grid needs at least one row", nameof(rows));
        }

        var layout = new GridLayout(rows.Count, rows.Max(r => r.Stack.Count), cell);
        var (gr, gg, gb) = GridLayout.GutterColour;
        var sheet = RgbaImage.Filled(layout.Width, layout.Height, gr, gg, gb, 255);
        for (int r = 0; r < rows.Count; r++)
        {
            var (lx, ly, lw, lh) = layout.LabelRect(r);
            Blit(sheet, DrawLabel(rows[r].Label, lw, lh), lx, ly);
            for (int k = 0; k < layout.Columns; k++)
            {
                var (x, y) = layout.CellOrigin(r, k);
                RgbaImage content = k < rows[r].Stack.Count
                    ? FitOnWhite(Compositor.FlattenOnWhite([rows[r].Stack[k]]), cell)
                    : RgbaImage.Filled(cell, cell, 255, 255, 255, 255);
                Blit(sheet, content, x, y);
            }
        }

        return sheet;
    }

    /// <summary>An opaque image scaled to fit a <paramref name="cell"/> square (aspect kept), centred on white.</summary>
    public static RgbaImage FitOnWhite(RgbaImage opaque, int cell)
    {
        ArgumentNullException.ThrowIfNull(opaque);
        double scale = Math.Min((double)cell / opaque.Width, (double)cell / opaque.Height);
        int w = Math.Clamp((int)Math.Round(opaque.Width * scale), 1, cell);
        int h = Math.Clamp((int)Math.Round(opaque.Height * scale), 1, cell);
        var resized = ImageResize.Resize(opaque, w, h);
        var placed = RgbaImage.Filled(cell, cell, 255, 255, 255, 255);
        Blit(placed, resized, (cell - w) / 2, (cell - h) / 2);
        return placed;
    }

    /// <summary>Black bold label text (DejaVu Sans where fontconfig has it) centred on a white cell.</summary>
    public static RgbaImage DrawLabel(string label, int width, int height)
    {
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var bitmap = new SKBitmap(info);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColors.White);
            using SKTypeface typeface = SKTypeface.FromFamilyName("DejaVu Sans", SKFontStyle.Bold) ?? SKTypeface.Default;
            float size = Math.Min(height * 0.45f, width * 0.8f / Math.Max(1, label.Length) * 1.4f);
            using var font = new SKFont(typeface, size);
            using var paint = new SKPaint { Color = SKColors.Black, IsAntialias = true };
            float baseline = (height / 2f) + (font.Metrics.CapHeight / 2f);
            canvas.DrawText(label, width / 2f, baseline, SKTextAlign.Center, font, paint);
        }

        var image = new RgbaImage(width, height);
        bitmap.GetPixelSpan().CopyTo(image.Pixels);
        return image;
    }

    private static void Blit(RgbaImage dst, RgbaImage src, int x0, int y0)
    {
        for (int y = 0; y < src.Height; y++)
        {
            Array.Copy(src.Pixels, y * src.Width * 4, dst.Pixels, (((y0 + y) * dst.Width) + x0) * 4, src.Width * 4);
        }
    }
}

/// <summary>
/// Splits a group that does not fit one grid into chunks of at most <c>rowsPerChunk</c> rows. The
/// anchor candidate is the first row of every chunk and every other candidate is in exactly one chunk.
/// </summary>
public static class CalibrationChunks
{
    public static IReadOnlyList<IReadOnlyList<int>> Plan(IReadOnlyList<int> candidates, int anchor, int rowsPerChunk)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        if (!candidates.Contains(anchor))
        {
            throw new ArgumentException("the anchor must be one of the candidates", nameof(anchor));
        }

        if (candidates.Count <= rowsPerChunk)
        {
            return [[anchor, .. candidates.Where(c => c != anchor)]];
        }

        if (rowsPerChunk < 2)
        {
            throw new ArgumentException($"chunks of {rowsPerChunk} row(s) cannot hold the anchor and another candidate", nameof(rowsPerChunk));
        }

        int[] others = candidates.Where(c => c != anchor).ToArray();
        int per = rowsPerChunk - 1;
        int chunks = (others.Length + per - 1) / per;

        // Spread the others evenly so no chunk is left with a lone candidate next to the anchor.
        var plan = new List<IReadOnlyList<int>>();
        int taken = 0;
        for (int c = 0; c < chunks; c++)
        {
            int size = (others.Length - taken) / (chunks - c);
            plan.Add([anchor, .. others.Skip(taken).Take(size)]);
            taken += size;
        }

        return plan;
    }
}
