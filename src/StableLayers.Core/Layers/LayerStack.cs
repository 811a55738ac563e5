using StableLayers.Core.Imaging;

namespace StableLayers.Core.Layers;

/// <summary>
/// N full-canvas RGBA layers, background first (index 0 is the bottom). All layers share one canvas size.
/// </summary>
public sealed class LayerStack
{
    public LayerStack(IReadOnlyList<Layer> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Count == 0)
        {
            throw new ArgumentException("a layer stack needs at least one layer", nameof(layers));
        }

        int w = layers[0].Image.Width, h = layers[0].Image.Height;
        for (int i = 1; i < layers.Count; i++)
        {
            var img = layers[i].Image;
            if (img.Width != w || img.Height != h)
            {
                throw new ArgumentException($"layer {i} ('{layers[i].Name}') is {img.Width}x{img.Height}, but layer 0 is {w}x{h}", nameof(layers));
            }
        }

        Layers = layers.ToArray();
        Width = w;
        Height = h;
    }

    public LayerStack(params RgbaImage[] images)
        : this(images.Select((img, i) => new Layer($"layer {i}", img)).ToArray())
    {
    }

    public IReadOnlyList<Layer> Layers { get; }

    public int Count => Layers.Count;

    public int Width { get; }

    public int Height { get; }

    public RgbaImage this[int index] => Layers[index].Image;

    public IEnumerable<RgbaImage> Images => Layers.Select(l => l.Image);

    /// <summary>Porter-Duff "over" of all layers, straight-alpha RGBA bytes (transparent where nothing covers).</summary>
    public RgbaImage Composite() => Compositor.Composite(Images);

    /// <summary>The composite flattened onto opaque white: what a viewer shows, and what composite.png holds.</summary>
    public RgbaImage FlattenOnWhite() => Compositor.FlattenOnWhite(Images);

    /// <summary>Inserts an opaque white layer 0 when the bottom layer does not fully cover the canvas (ground-truth convention).</summary>
    public LayerStack WithOpaqueBackground()
    {
        if (Layers[0].Image.IsOpaque())
        {
            return this;
        }

        var bg = new Layer("white background (added)", RgbaImage.Filled(Width, Height, 255, 255, 255, 255));
        return new LayerStack([bg, .. Layers]);
    }
}
