using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;

namespace StableLayers.Core.Formats.Psd;

/// <summary>PSD colour modes (header field "color mode"); only <see cref="Grayscale"/> and <see cref="Rgb"/> are read.</summary>
public enum PsdColorMode
{
    Bitmap = 0,
    Grayscale = 1,
    Indexed = 2,
    Rgb = 3,
    Cmyk = 4,
    Multichannel = 7,
    Duotone = 8,
    Lab = 9,
}

/// <summary>
/// One raster layer of a PSD as stored: its pixels cropped to <see cref="Left"/>/<see cref="Top"/> (which may lie
/// outside the canvas), straight alpha, with neither opacity nor masks applied.
/// </summary>
public sealed record PsdLayer
{
    public required string Name { get; init; }

    /// <summary>Layer rectangle in canvas coordinates (may extend past the canvas or be empty).</summary>
    public int Left { get; init; }

    public int Top { get; init; }

    public int Width { get; init; }

    public int Height { get; init; }

    /// <summary>The layer's own pixels (Width x Height); null when the layer rectangle is empty.</summary>
    public RgbaImage? Pixels { get; init; }

    /// <summary>Layer opacity 0..255.</summary>
    public byte Opacity { get; init; } = 255;

    /// <summary>Fill opacity 0..255 ('iOpa'); for plain pixel layers it scales alpha just like opacity.</summary>
    public byte FillOpacity { get; init; } = 255;

    /// <summary>Four-character blend mode key ("norm", "mul ", ...).</summary>
    public string BlendMode { get; init; } = "norm";

    /// <summary>Hidden by its own eye toggle.</summary>
    public bool HiddenSelf { get; init; }

    /// <summary>Hidden by itself or by an enclosing group: such layers are left out of <see cref="PsdDocument.ToLayerStack"/>.</summary>
    public bool Hidden { get; init; }

    /// <summary>Product of the opacities of the enclosing groups, 0..1.</summary>
    public double GroupOpacity { get; init; } = 1.0;

    /// <summary>True when the layer is clipped to the layer below (a clipping mask).</summary>
    public bool Clipped { get; init; }

    /// <summary>Enclosing group names, outermost first, joined with '/'; empty at top level.</summary>
    public string GroupPath { get; init; } = string.Empty;

    /// <summary>Opacity applied when baking: opacity x fill x group opacities, 0..1.</summary>
    public double EffectiveOpacity => Opacity / 255.0 * (FillOpacity / 255.0) * GroupOpacity;
}

/// <summary>A PSD as read by <see cref="PsdReader"/>: canvas, raster layers bottom-first, the merged image and warnings.</summary>
public sealed class PsdDocument
{
    public PsdDocument(int width, int height, PsdColorMode colorMode, IReadOnlyList<PsdLayer> layers, RgbaImage? merged, IReadOnlyList<string> warnings)
    {
        Width = width;
        Height = height;
        ColorMode = colorMode;
        Layers = layers;
        Merged = merged;
        Warnings = warnings;
    }

    public int Width { get; }

    public int Height { get; }

    public PsdColorMode ColorMode { get; }

    /// <summary>Raster layers, bottom first; group open/close records are not included (see <see cref="PsdLayer.GroupPath"/>).</summary>
    public IReadOnlyList<PsdLayer> Layers { get; }

    /// <summary>The flattened image Photoshop stores for readers without layer support (opaque); null if unreadable.</summary>
    public RgbaImage? Merged { get; }

    /// <summary>Features that were approximated or ignored (blend modes, masks, group opacity, ...).</summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>
    /// Visible layers as full-canvas RGBA with opacity baked into alpha, bottom first, clipped to the canvas.
    /// With <paramref name="addWhiteBackground"/> a white opaque layer 0 is added when the lowest layer does not cover
    /// the canvas (the ground-truth convention of docs/EVALUATION.md). Layers without pixels (empty rectangles) are
    /// left out, as in the ground truth; clipped layers are masked by the alpha of their base layer. A PSD without
    /// layers gives its merged image.
    /// </summary>
    public LayerStack ToLayerStack(bool addWhiteBackground = false)
    {
        var result = new List<Layer>();
        RgbaImage? clipBase = null;
        foreach (var layer in Layers)
        {
            if (layer.Hidden)
            {
                // A hidden base hides its whole clipping group in Photoshop.
                if (!layer.Clipped)
                {
                    clipBase = null;
                }

                continue;
            }

            // Layers without pixels (empty rectangles, e.g. unrendered fills) contribute nothing: leave them out.
            if (layer.Pixels is null)
            {
                continue;
            }

            var canvas = Place(layer);
            if (layer.Clipped && clipBase is not null)
            {
                MaskBy(canvas, clipBase);
            }
            else if (layer.Clipped)
            {
                continue;
            }

            if (!layer.Clipped)
            {
                clipBase = canvas;
            }

            result.Add(new Layer(layer.Name, canvas));
        }

        if (result.Count == 0)
        {
            var fallback = Layers.Count == 0 && Merged is not null
                ? Merged.Clone()
                : new RgbaImage(Width, Height);
            result.Add(new Layer(Layers.Count == 0 ? "Background" : "empty", fallback));
        }

        var stack = new LayerStack(result);
        return addWhiteBackground ? stack.WithOpaqueBackground() : stack;
    }

    /// <summary>Copies the part of the layer inside the canvas onto a transparent full canvas, scaling alpha by the effective opacity.</summary>
    private RgbaImage Place(PsdLayer layer)
    {
        var canvas = new RgbaImage(Width, Height);
        if (layer.Pixels is null)
        {
            return canvas;
        }

        int x0 = Math.Max(0, layer.Left), y0 = Math.Max(0, layer.Top);
        int x1 = Math.Min(Width, layer.Left + layer.Width), y1 = Math.Min(Height, layer.Top + layer.Height);
        double k = layer.EffectiveOpacity;
        bool scale = k < 1.0;
        var src = layer.Pixels.Pixels;
        var dst = canvas.Pixels;
        for (int y = y0; y < y1; y++)
        {
            int s = (((y - layer.Top) * layer.Width) + (x0 - layer.Left)) * 4;
            int d = ((y * Width) + x0) * 4;
            int n = (x1 - x0) * 4;
            if (n <= 0)
            {
                break;
            }

            src.AsSpan(s, n).CopyTo(dst.AsSpan(d, n));
            if (scale)
            {
                for (int i = d + 3; i < d + n; i += 4)
                {
                    dst[i] = (byte)Math.Round(dst[i] * k, MidpointRounding.AwayFromZero);
                }
            }
        }

        return canvas;
    }

    private static void MaskBy(RgbaImage layer, RgbaImage clipBase)
    {
        var p = layer.Pixels;
        var b = clipBase.Pixels;
        for (int i = 3; i < p.Length; i += 4)
        {
            p[i] = (byte)(((p[i] * b[i]) + 127) / 255);
        }
    }
}
