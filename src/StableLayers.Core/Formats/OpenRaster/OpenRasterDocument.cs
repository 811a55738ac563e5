using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;

namespace StableLayers.Core.Formats.OpenRaster;

/// <summary>One layer of an OpenRaster file as stored: its PNG placed at <see cref="X"/>/<see cref="Y"/> (offsets of enclosing stacks included).</summary>
public sealed record OpenRasterLayer
{
    public required string Name { get; init; }

    public required RgbaImage Pixels { get; init; }

    /// <summary>The zip entry the pixels came from.</summary>
    public required string Source { get; init; }

    public int X { get; init; }

    public int Y { get; init; }

    /// <summary>Own opacity times the opacities of enclosing stacks, 0..1.</summary>
    public double Opacity { get; init; } = 1.0;

    /// <summary>Hidden itself or inside a hidden stack.</summary>
    public bool Hidden { get; init; }

    public string CompositeOp { get; init; } = OpenRasterWriter.SrcOver;
}

/// <summary>An OpenRaster file as read by <see cref="OpenRasterReader"/>: canvas, layers bottom first, and warnings.</summary>
public sealed class OpenRasterDocument(int width, int height, IReadOnlyList<OpenRasterLayer> layers, IReadOnlyList<string> warnings)
{
    public int Width { get; } = width;

    public int Height { get; } = height;

    /// <summary>Layers bottom first (stack.xml lists them top first).</summary>
    public IReadOnlyList<OpenRasterLayer> Layers { get; } = layers;

    /// <summary>Features that were approximated or ignored (composite ops, stack opacity, unknown elements).</summary>
    public IReadOnlyList<string> Warnings { get; } = warnings;

    /// <summary>
    /// Visible layers as full-canvas RGBA with opacity baked into alpha, clipped to the canvas, bottom first.
    /// With <paramref name="addWhiteBackground"/> a white layer 0 is added when the lowest layer is not opaque.
    /// </summary>
    public LayerStack ToLayerStack(bool addWhiteBackground = false)
    {
        var result = new List<Layer>();
        foreach (var l in Layers)
        {
            if (!l.Hidden)
            {
                result.Add(new Layer(l.Name, Place(l)));
            }
        }

        if (result.Count == 0)
        {
            result.Add(new Layer("empty", new RgbaImage(Width, Height)));
        }

        var stack = new LayerStack(result);
        return addWhiteBackground ? stack.WithOpaqueBackground() : stack;
    }

    private RgbaImage Place(OpenRasterLayer l)
    {
        var canvas = new RgbaImage(Width, Height);
        var src = l.Pixels;
        int x0 = Math.Max(0, l.X), y0 = Math.Max(0, l.Y);
        int x1 = (int)Math.Min(Width, (long)l.X + src.Width), y1 = (int)Math.Min(Height, (long)l.Y + src.Height);
        double k = Math.Clamp(l.Opacity, 0, 1);
        for (int y = y0; y < y1 && x1 > x0; y++)
        {
            int s = (((y - l.Y) * src.Width) + (x0 - l.X)) * 4;
            int d = ((y * Width) + x0) * 4;
            int n = (x1 - x0) * 4;
            src.Pixels.AsSpan(s, n).CopyTo(canvas.Pixels.AsSpan(d, n));
            if (k < 1.0)
            {
                for (int i = d + 3; i < d + n; i += 4)
                {
                    canvas.Pixels[i] = (byte)Math.Round(canvas.Pixels[i] * k, MidpointRounding.AwayFromZero);
                }
            }
        }

        return canvas;
    }
}
