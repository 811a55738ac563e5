using SkiaSharp;
using StableLayers.Core.Imaging;
using StableLayers.Data.Rendering;

namespace StableLayers.Data.Synthesis;

/// <summary>One foreground layer: full-canvas straight-alpha pixels, a short layer name and its caption phrase.</summary>
internal sealed record PaintedElement(RgbaImage Image, string Name, string Phrase);

/// <summary>
/// Paints one foreground element on its own transparent canvas: a filled shape (optionally with a border), an
/// outline, a soft (feathered) shape, a semi-transparent plate, or a word in a real font. Everything is one or
/// two flat colours so a tiny model can learn what belongs to which layer.
/// </summary>
internal static class ForegroundPainter
{
    public static readonly IReadOnlyList<string> ShapeNames = ["rectangle", "rounded rectangle", "circle", "ellipse", "triangle", "star", "blob"];

    public static readonly IReadOnlyList<string> Words =
    [
        "SALE", "NEW", "HELLO", "OPEN", "SUMMER", "PARTY", "FREE", "SHOP", "LOVE", "BEST",
        "COFFEE", "MUSIC", "TRAVEL", "WOW", "YES", "HOT", "FUN", "BIG", "GO", "TOP",
    ];

    private static readonly IReadOnlyList<(string Kind, double Weight)> Kinds =
    [
        ("shape", 0.40), ("text", 0.20), ("outline", 0.14), ("soft", 0.14), ("plate", 0.12),
    ];

    private static readonly IReadOnlyList<string> OutlineShapes = ["rectangle", "rounded rectangle", "circle", "ellipse", "triangle", "star"];

    private static readonly IReadOnlyList<string> SoftShapes = ["circle", "ellipse", "rounded rectangle", "blob", "star"];

    public static PaintedElement Paint(SampleRandom rng, int size, NamedColor[] avoid, string? forceKind = null)
    {
        string kind = forceKind ?? rng.PickWeighted(Kinds);
        var color = NamedColor.PickOther(rng, avoid);
        using var bitmap = SkiaRaster.NewCanvasBitmap(size, size);
        using var canvas = new SKCanvas(bitmap);
        string name, phrase;
        switch (kind)
        {
            case "text":
                {
                    string word = rng.Pick(Words);
                    DrawWord(canvas, rng, size, word, color);
                    name = $"text: {word}";
                    phrase = $"the word {word} in {color.Name}";
                    break;
                }

            case "outline":
                {
                    string shape = rng.Pick(OutlineShapes);
                    using var path = ShapePath(rng, size, shape);
                    using var paint = new SKPaint { Color = color.Sample(rng), IsAntialias = true, Style = SKPaintStyle.Stroke, StrokeWidth = size * rng.Range(0.02f, 0.05f), StrokeJoin = SKStrokeJoin.Round };
                    canvas.DrawPath(path, paint);
                    name = $"outline: {shape}";
                    phrase = $"{color.WithArticle} {shape} outline";
                    break;
                }

            case "soft":
                {
                    string shape = rng.Pick(SoftShapes);
                    using var path = ShapePath(rng, size, shape);
                    using var blur = SKMaskFilter.CreateBlur(SKBlurStyle.Normal, size * rng.Range(0.012f, 0.035f));
                    using var paint = new SKPaint { Color = color.Sample(rng), IsAntialias = true, MaskFilter = blur };
                    canvas.DrawPath(path, paint);
                    name = $"soft: {shape}";
                    phrase = $"a soft {color.Name} {shape}";
                    break;
                }

            case "plate":
                {
                    float w = size * rng.Range(0.45f, 0.95f), h = size * rng.Range(0.2f, 0.5f);
                    float x = rng.Range(0, size - w), y = rng.Range(0, size - h);
                    float r = Math.Min(w, h) * rng.Range(0f, 0.3f);
                    byte alpha = (byte)MathF.Round(255 * rng.Range(0.3f, 0.8f));
                    using var paint = new SKPaint { Color = color.Sample(rng, alpha), IsAntialias = true };
                    canvas.DrawRoundRect(SKRect.Create(x, y, w, h), r, r, paint);
                    name = "plate";
                    phrase = $"a translucent {color.Name} panel";
                    break;
                }

            default:
                {
                    string shape = rng.Pick(ShapeNames);
                    using var path = ShapePath(rng, size, shape);
                    using var paint = new SKPaint { Color = color.Sample(rng), IsAntialias = true };
                    canvas.DrawPath(path, paint);
                    name = $"shape: {shape}";
                    phrase = $"{color.WithArticle} {shape}";
                    if (shape != "blob" && rng.Chance(0.2))
                    {
                        var border = NamedColor.PickOther(rng, [.. avoid, color]);
                        using var stroke = new SKPaint { Color = border.Sample(rng), IsAntialias = true, Style = SKPaintStyle.Stroke, StrokeWidth = size * rng.Range(0.015f, 0.035f), StrokeJoin = SKStrokeJoin.Round };
                        canvas.DrawPath(path, stroke);
                        phrase += $" with {border.WithArticle} border";
                    }

                    break;
                }
        }

        canvas.Flush();
        return new PaintedElement(SkiaRaster.ToStraightRgba(bitmap), name, phrase);
    }

    /// <summary>A word scaled to 35-85% of the canvas width (capped in height), placed fully inside the canvas.</summary>
    private static void DrawWord(SKCanvas canvas, SampleRandom rng, int size, string word, NamedColor color)
    {
        var typeface = rng.Pick(SynthFonts.Typefaces);
        using var font = new SKFont(typeface, 100) { Edging = SKFontEdging.Antialias, Subpixel = true };
        font.MeasureText(word, out var bounds100);
        if (bounds100.Width <= 0 || bounds100.Height <= 0)
        {
            return; // no glyphs: the caller's coverage check rejects the empty layer
        }

        float scale = Math.Min(size * rng.Range(0.35f, 0.85f) / bounds100.Width, size * 0.45f / bounds100.Height);
        font.Size = 100 * scale;
        font.MeasureText(word, out var bounds);
        float x = rng.Range(0, Math.Max(0, size - bounds.Width)) - bounds.Left;
        float y = rng.Range(0, Math.Max(0, size - bounds.Height)) - bounds.Top;
        float tilt = rng.Chance(0.3) ? rng.Range(-12f, 12f) : 0f;
        using var paint = new SKPaint { Color = color.Sample(rng), IsAntialias = true };
        canvas.Save();
        canvas.RotateDegrees(tilt, x + bounds.MidX, y + bounds.MidY);
        canvas.DrawText(word, x, y, SKTextAlign.Left, font, paint);
        canvas.Restore();
    }

    /// <summary>A shape 20-55% of the canvas, centred somewhere in its middle 70%, possibly rotated.</summary>
    private static SKPath ShapePath(SampleRandom rng, int size, string shape)
    {
        float cx = rng.Range(0.15f, 0.85f) * size, cy = rng.Range(0.15f, 0.85f) * size;
        float w = rng.Range(0.2f, 0.55f) * size;
        float h = shape is "circle" or "star" or "blob" ? w : w * rng.Range(0.5f, 1.6f);
        using var builder = new SKPathBuilder();
        var rect = SKRect.Create(cx - (w / 2), cy - (h / 2), w, h);
        switch (shape)
        {
            case "rectangle":
                builder.AddRect(rect, SKPathDirection.Clockwise);
                break;
            case "rounded rectangle":
                float r = Math.Min(w, h) * rng.Range(0.12f, 0.35f);
                builder.AddRoundRect(rect, r, r, SKPathDirection.Clockwise);
                break;
            case "circle":
            case "ellipse":
                builder.AddOval(rect, SKPathDirection.Clockwise);
                break;
            case "triangle":
                builder.MoveTo(cx, rect.Top);
                builder.LineTo(rect.Right, rect.Bottom);
                builder.LineTo(rect.Left, rect.Bottom);
                builder.Close();
                break;
            case "star":
                int points = rng.Int(5, 8);
                float inner = rng.Range(0.38f, 0.55f);
                for (int i = 0; i < points * 2; i++)
                {
                    float rad = (i % 2 == 0 ? 1f : inner) * w / 2;
                    float a = (MathF.PI * i / points) - (MathF.PI / 2);
                    var p = new SKPoint(cx + (rad * MathF.Cos(a)), cy + (rad * MathF.Sin(a)));
                    if (i == 0)
                    {
                        builder.MoveTo(p);
                    }
                    else
                    {
                        builder.LineTo(p);
                    }
                }

                builder.Close();
                break;
            default:
                Blob(builder, rng, cx, cy, w / 2);
                break;
        }

        var path = builder.Detach();
        if (shape is not ("circle" or "blob") && rng.Chance(0.5))
        {
            path.Transform(SKMatrix.CreateRotationDegrees(rng.Range(-45f, 45f), cx, cy));
        }

        return path;
    }

    /// <summary>A smooth closed curve through points at random radii around the centre (quadratics through midpoints).</summary>
    private static void Blob(SKPathBuilder path, SampleRandom rng, float cx, float cy, float radius)
    {
        int n = rng.Int(6, 10);
        var pts = new SKPoint[n];
        for (int i = 0; i < n; i++)
        {
            float a = MathF.Tau * (i + rng.Range(-0.2f, 0.2f)) / n;
            float rad = radius * rng.Range(0.6f, 1f);
            pts[i] = new SKPoint(cx + (rad * MathF.Cos(a)), cy + (rad * MathF.Sin(a)));
        }

        static SKPoint Mid(SKPoint a, SKPoint b) => new((a.X + b.X) / 2, (a.Y + b.Y) / 2);
        path.MoveTo(Mid(pts[n - 1], pts[0]));
        for (int i = 0; i < n; i++)
        {
            path.QuadTo(pts[i], Mid(pts[i], pts[(i + 1) % n]));
        }

        path.Close();
    }
}
