using System.Globalization;
using SkiaSharp;
using StableLayers.Core;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Data.Rendering;

namespace StableLayers.Data.Crello;

/// <summary>
/// Renders a Crello design to full-canvas layers, one per element: the element's pre-rendered image is drawn
/// into the box (left, top, width, height), rotated by angle degrees (clockwise, as in Crello and Skia) about
/// the box centre, with paint alpha = opacity. Then LayerD's ground-truth filters apply (see <see cref="CrelloOptions"/>).
/// </summary>
internal static class CrelloRenderer
{
    public static LayerStack Render(CrelloDesign design, CrelloOptions options, string path)
    {
        double scale = options.ShortSide is int side ? side / (double)Math.Min(design.CanvasWidth, design.CanvasHeight) : 1.0;
        int width = Math.Max(1, (int)Math.Round(design.CanvasWidth * scale));
        int height = Math.Max(1, (int)Math.Round(design.CanvasHeight * scale));
        ImageLimits.Check($"{path}: row {design.Row} (id {design.Id})", width, height);

        var layers = new List<Layer>(design.Elements.Count + 1);
        for (int e = 0; e < design.Elements.Count; e++)
        {
            var element = design.Elements[e];
            string where = string.Create(CultureInfo.InvariantCulture, $"{path}: row {design.Row} (id {design.Id}), element {e}");
            // Per-axis scales map the canvas exactly onto the rounded pixel size, so full-canvas elements stay full-canvas.
            var image = RenderElement(element, width, height, width / (float)design.CanvasWidth, height / (float)design.CanvasHeight, where);
            if (options.DropElementsWithoutOpaquePixel && !HasOpaquePixel(image))
            {
                continue;
            }

            string name = string.Create(CultureInfo.InvariantCulture, $"element {e}{(element.Type is null ? string.Empty : $" ({element.Type})")}");
            layers.Add(new Layer(name, image));
        }

        if (options.DropLayersUnderOpaqueFullCanvas)
        {
            int lastOpaque = layers.FindLastIndex(l => l.Image.IsOpaque());
            if (lastOpaque > 0)
            {
                layers.RemoveRange(0, lastOpaque);
            }
        }

        if (layers.Count == 0)
        {
            // Nothing survived (or the design is empty): a lone white canvas keeps the sample well-formed.
            return new LayerStack([new Layer("white background (added)", RgbaImage.Filled(width, height, 255, 255, 255, 255))]);
        }

        var stack = new LayerStack(layers);
        return options.AddWhiteBackground ? stack.WithOpaqueBackground() : stack;
    }

    private static RgbaImage RenderElement(CrelloElement element, int width, int height, float scaleX, float scaleY, string where)
    {
        RgbaImage source;
        try
        {
            source = PngCodec.Decode(element.Image, where);
        }
        catch (BadInputException e)
        {
            throw new BadInputException(where, $"element image could not be decoded ({e.Problem})", e);
        }

        using var bitmap = SkiaRaster.NewCanvasBitmap(width, height);
        if (element.Width > 0 && element.Height > 0 && element.Opacity > 0)
        {
            using var image = SkiaRaster.ToSkImage(source);
            using var canvas = new SKCanvas(bitmap);
            var box = SKRect.Create((float)element.Left, (float)element.Top, (float)element.Width, (float)element.Height);
            canvas.Scale(scaleX, scaleY);
            canvas.RotateDegrees((float)element.Angle, box.MidX, box.MidY);

            // Mipmaps when shrinking (no aliasing); Catmull-Rom when enlarging (smooth, and interpolating, so a 1:1
            // pixel-aligned draw reproduces the source exactly, which Mitchell would blur).
            double pixelScale = Math.Min(scaleX * element.Width / source.Width, scaleY * element.Height / source.Height);
            var sampling = pixelScale < 1
                ? new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear)
                : new SKSamplingOptions(SKCubicResampler.CatmullRom);
            byte alpha = (byte)Math.Clamp((int)Math.Round(element.Opacity * 255), 0, 255);
            using var paint = new SKPaint { Color = new SKColor(255, 255, 255, alpha), IsAntialias = true };
            canvas.DrawImage(image, box, sampling, paint);
            canvas.Flush();
        }

        return SkiaRaster.ToStraightRgba(bitmap);
    }

    private static bool HasOpaquePixel(RgbaImage image)
    {
        var p = image.Pixels;
        for (int i = 3; i < p.Length; i += 4)
        {
            if (p[i] == 255)
            {
                return true;
            }
        }

        return false;
    }
}
