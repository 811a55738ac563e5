using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;

namespace StableLayers.Judges.Tests;

/// <summary>Deterministic ways to spoil a ground-truth decomposition, each aimed at one rubric criterion.</summary>
public static class Degradations
{
    public static IReadOnlyList<string> Names { get; } = ["merged", "blanked", "glazed", "shifted", "speckled", "hazed", "uninpainted"];

    public static LayerStack Apply(string name, LayerStack gt) => name switch
    {
        "merged" => Merged(gt),
        "blanked" => Blanked(gt),
        "glazed" => Glazed(gt),
        "shifted" => Shifted(gt),
        "speckled" => Speckled(gt, seed: 7),
        "hazed" => Hazed(gt, seed: 11),
        "uninpainted" => Uninpainted(gt),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "unknown degradation"),
    };

    /// <summary>
    /// Whether the degradation changes what it targets on this sample: noise needs transparent area to land in (at
    /// least 10% of the foreground layers' pixels at alpha 0; a layer that is already faint everywhere cannot get
    /// hazier), blanking and shifting need a non-blank foreground layer, and leaving the foreground in layer 0 must
    /// change layer 0 somewhere.
    /// </summary>
    public static bool Applies(string name, LayerStack gt)
    {
        ArgumentNullException.ThrowIfNull(gt);
        return name switch
        {
            "speckled" or "hazed" => TransparentShare(gt) >= 0.1,
            "blanked" or "shifted" => Coverage(gt[HeaviestForeground(gt)]) >= 0.005,
            "uninpainted" => !gt.FlattenOnWhite().PixelsEqual(gt[0]),
            _ => true,
        };
    }

    /// <summary>The two top layers merged into one, with a blank layer in place of the upper one (layer count kept).</summary>
    public static LayerStack Merged(LayerStack gt)
    {
        var layers = gt.Images.Select(i => i.Clone()).ToArray();
        int top = layers.Length - 1;
        var merged = Compositor.Composite([layers[top - 1], layers[top]]);
        if (top - 1 == 0)
        {
            merged = Compositor.FlattenOnWhite([merged]); // layer 0 stays opaque
        }

        layers[top - 1] = merged;
        layers[top] = new RgbaImage(gt.Width, gt.Height);
        return new LayerStack(layers);
    }

    /// <summary>The foreground layer with the most alpha mass emptied.</summary>
    public static LayerStack Blanked(LayerStack gt)
    {
        var layers = gt.Images.Select(i => i.Clone()).ToArray();
        layers[HeaviestForeground(gt)] = new RgbaImage(gt.Width, gt.Height);
        return new LayerStack(layers);
    }

    /// <summary>The top layer replaced by a faint (alpha 0.25) full-canvas copy of the composite.</summary>
    public static LayerStack Glazed(LayerStack gt)
    {
        var layers = gt.Images.Select(i => i.Clone()).ToArray();
        var copy = gt.FlattenOnWhite().Clone();
        for (int i = 3; i < copy.Pixels.Length; i += 4)
        {
            copy.Pixels[i] = 64;
        }

        layers[^1] = copy;
        return new LayerStack(layers);
    }

    /// <summary>The heaviest foreground layer moved by max(3, min(W,H)/25) px right and down.</summary>
    public static LayerStack Shifted(LayerStack gt)
    {
        var layers = gt.Images.Select(i => i.Clone()).ToArray();
        int k = HeaviestForeground(gt);
        int d = Math.Max(3, Math.Min(gt.Width, gt.Height) / 25);
        layers[k] = Shift(gt[k], d, d);
        return new LayerStack(layers);
    }

    /// <summary>Isolated specks: 2% of the transparent pixels of every foreground layer get a random colour and alpha 128..255.</summary>
    public static LayerStack Speckled(LayerStack gt, int seed) => Noise(gt, seed, 0.02, 128, 255);

    /// <summary>Colour haze: 30% of the transparent pixels of every foreground layer get a random colour with alpha 2..12.</summary>
    public static LayerStack Hazed(LayerStack gt, int seed) => Noise(gt, seed, 0.3, 2, 12);

    /// <summary>Layer 0 replaced by the flattened input: the foreground left in the background, nothing inpainted.</summary>
    public static LayerStack Uninpainted(LayerStack gt)
    {
        var layers = gt.Images.Select(i => i.Clone()).ToArray();
        layers[0] = gt.FlattenOnWhite();
        return new LayerStack(layers);
    }

    public static RgbaImage Shift(RgbaImage src, int dx, int dy) => ImageShift.Shift(src, dx, dy);

    public static int HeaviestForeground(LayerStack stack)
    {
        int best = 1;
        long bestMass = -1;
        for (int k = 1; k < stack.Count; k++)
        {
            long mass = 0;
            var p = stack[k].Pixels;
            for (int i = 3; i < p.Length; i += 4)
            {
                mass += p[i];
            }

            if (mass > bestMass)
            {
                bestMass = mass;
                best = k;
            }
        }

        return best;
    }

    private static double TransparentShare(LayerStack gt)
    {
        long zero = 0, total = 0;
        for (int k = 1; k < gt.Count; k++)
        {
            var p = gt[k].Pixels;
            for (int i = 3; i < p.Length; i += 4)
            {
                zero += p[i] == 0 ? 1 : 0;
            }

            total += gt[k].PixelCount;
        }

        return total == 0 ? 0 : zero / (double)total;
    }

    private static double Coverage(RgbaImage layer)
    {
        int covered = 0;
        for (int i = 3; i < layer.Pixels.Length; i += 4)
        {
            covered += layer.Pixels[i] >= 26 ? 1 : 0;
        }

        return covered / (double)layer.PixelCount;
    }

    private static LayerStack Noise(LayerStack gt, int seed, double density, int minAlpha, int maxAlpha)
    {
        var rng = new Random(seed);
        var layers = gt.Images.Select(i => i.Clone()).ToArray();
        for (int k = 1; k < layers.Length; k++)
        {
            var p = layers[k].Pixels;
            for (int i = 0; i < p.Length; i += 4)
            {
                if (p[i + 3] == 0 && rng.NextDouble() < density)
                {
                    p[i] = (byte)rng.Next(256);
                    p[i + 1] = (byte)rng.Next(256);
                    p[i + 2] = (byte)rng.Next(256);
                    p[i + 3] = (byte)rng.Next(minAlpha, maxAlpha + 1);
                }
            }
        }

        return new LayerStack(layers);
    }
}
