using SkiaSharp;
using StableLayers.Core.Imaging;
using StableLayers.Data.Rendering;

namespace StableLayers.Data.Synthesis;

/// <summary>An opaque background layer, the colours it uses (foregrounds avoid them) and its caption phrase.</summary>
internal sealed record PaintedBackground(RgbaImage Image, string Kind, string Phrase, NamedColor[] Colors);

/// <summary>Paints layer 0: a linear or radial gradient, or a texture (stripes, dots, smooth noise). Always opaque.</summary>
internal static class BackgroundPainter
{
    private static readonly IReadOnlyList<string> Kinds = ["linear gradient", "radial gradient", "stripes", "dots", "noise"];

    public static PaintedBackground Paint(SampleRandom rng, int size)
    {
        string kind = rng.Pick(Kinds);
        var c1 = rng.Pick(NamedColor.Palette);
        var c2 = NamedColor.PickOther(rng, c1);
        using var bitmap = SkiaRaster.NewCanvasBitmap(size, size);
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(c2.Sample(rng));
        string phrase;
        switch (kind)
        {
            case "linear gradient":
                LinearGradient(canvas, rng, size, c1, c2);
                phrase = $"{c1.WithArticle} and {c2.Name} gradient";
                break;
            case "radial gradient":
                RadialGradient(canvas, rng, size, c1, c2);
                phrase = $"{c1.WithArticle} and {c2.Name} radial gradient";
                break;
            case "stripes":
                Stripes(canvas, rng, size, c1);
                phrase = $"{c1.Name} and {c2.Name} stripes";
                break;
            case "dots":
                Dots(canvas, rng, size, c1);
                phrase = $"{c1.Name} dots on {c2.Name}";
                break;
            default:
                Noise(canvas, rng, size, c1);
                phrase = $"{c1.WithArticle} noise texture";
                c2 = c1;
                break;
        }

        canvas.Flush();
        var image = SkiaRaster.ToStraightRgba(bitmap);
        return new PaintedBackground(image, kind, phrase, [c1, c2]);
    }

    private static void LinearGradient(SKCanvas canvas, SampleRandom rng, int size, NamedColor c1, NamedColor c2)
    {
        float angle = rng.Range(0, MathF.Tau);
        float half = size / 2f;
        var d = new SKPoint(MathF.Cos(angle) * half, MathF.Sin(angle) * half);
        var centre = new SKPoint(half, half);
        using var shader = SKShader.CreateLinearGradient(centre - d, centre + d, [c1.Sample(rng), c2.Sample(rng)], SKShaderTileMode.Clamp);
        using var paint = new SKPaint { Shader = shader };
        canvas.DrawRect(0, 0, size, size, paint);
    }

    private static void RadialGradient(SKCanvas canvas, SampleRandom rng, int size, NamedColor c1, NamedColor c2)
    {
        var centre = new SKPoint(rng.Range(0.2f, 0.8f) * size, rng.Range(0.2f, 0.8f) * size);
        float radius = rng.Range(0.5f, 1.1f) * size;
        using var shader = SKShader.CreateRadialGradient(centre, radius, [c1.Sample(rng), c2.Sample(rng)], SKShaderTileMode.Clamp);
        using var paint = new SKPaint { Shader = shader };
        canvas.DrawRect(0, 0, size, size, paint);
    }

    private static void Stripes(SKCanvas canvas, SampleRandom rng, int size, NamedColor c1)
    {
        float period = rng.Range(0.08f, 0.2f) * size;
        float width = period * rng.Range(0.3f, 0.6f);
        using var paint = new SKPaint { Color = c1.Sample(rng), IsAntialias = true };
        canvas.Save();
        canvas.RotateDegrees(rng.Pick(new[] { 0f, 45f, 90f, 135f, rng.Range(0, 180) }), size / 2f, size / 2f);

        // The rotated canvas must still be covered: draw stripes over the circumscribed square.
        float reach = size * 1.5f;
        for (float x = -reach + rng.Range(0, period); x < reach; x += period)
        {
            canvas.DrawRect(x, -reach, width, 2 * reach, paint);
        }

        canvas.Restore();
    }

    private static void Dots(SKCanvas canvas, SampleRandom rng, int size, NamedColor c1)
    {
        float spacing = rng.Range(0.08f, 0.17f) * size;
        float radius = spacing * rng.Range(0.18f, 0.35f);
        bool staggered = rng.Chance(0.5);
        using var paint = new SKPaint { Color = c1.Sample(rng), IsAntialias = true };
        int row = 0;
        for (float y = spacing / 2; y < size + spacing; y += spacing, row++)
        {
            float offset = staggered && row % 2 == 1 ? spacing / 2 : 0;
            for (float x = (spacing / 2) - offset; x < size + spacing; x += spacing)
            {
                canvas.DrawCircle(x, y, radius, paint);
            }
        }
    }

    /// <summary>Smooth value noise: a coarse grid of shades of one colour, upsampled bilinearly by Skia.</summary>
    private static void Noise(SKCanvas canvas, SampleRandom rng, int size, NamedColor c1)
    {
        int cells = rng.Int(3, 10);
        using var grid = new SKBitmap(new SKImageInfo(cells, cells, SKColorType.Rgba8888, SKAlphaType.Premul));
        var baseColor = c1.Sample(rng);
        for (int y = 0; y < cells; y++)
        {
            for (int x = 0; x < cells; x++)
            {
                float shade = rng.Range(0.55f, 1.35f);
                grid.SetPixel(x, y, new SKColor(Shade(baseColor.Red, shade), Shade(baseColor.Green, shade), Shade(baseColor.Blue, shade)));
            }
        }

        using var image = SKImage.FromBitmap(grid);
        canvas.DrawImage(image, SKRect.Create(0, 0, size, size), new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.None));

        static byte Shade(byte c, float f) => (byte)Math.Clamp((int)MathF.Round(c * f), 0, 255);
    }
}
