using StableLayers.Core.Imaging;

namespace StableLayers.Core.Layers;

/// <summary>Porter-Duff "over" compositing of straight-alpha layers, in float32, quantised once at the end.</summary>
public static class Compositor
{
    /// <summary>Composites bottom-to-top into premultiplied float RGBA in [0,1] (4 floats per pixel).</summary>
    public static float[] CompositePremultiplied(IEnumerable<RgbaImage> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        float[]? acc = null;
        int w = 0, h = 0;
        foreach (var layer in layers)
        {
            if (acc is null)
            {
                w = layer.Width;
                h = layer.Height;
                acc = new float[w * h * 4];
            }
            else if (layer.Width != w || layer.Height != h)
            {
                throw new ArgumentException($"layer sizes differ: {layer.Width}x{layer.Height} vs {w}x{h}", nameof(layers));
            }

            OverInPlace(acc, layer.Pixels);
        }

        return acc ?? throw new ArgumentException("no layers", nameof(layers));
    }

    /// <summary>acc (premultiplied float RGBA) = src over acc, where src is straight-alpha bytes.</summary>
    public static void OverInPlace(float[] acc, byte[] src)
    {
        const float inv = 1f / 255f;
        for (int i = 0; i < src.Length; i += 4)
        {
            byte ab = src[i + 3];
            if (ab == 0)
            {
                continue;
            }

            float a = ab * inv;
            float keep = 1f - a;
            acc[i] = (src[i] * inv * a) + (acc[i] * keep);
            acc[i + 1] = (src[i + 1] * inv * a) + (acc[i + 1] * keep);
            acc[i + 2] = (src[i + 2] * inv * a) + (acc[i + 2] * keep);
            acc[i + 3] = a + (acc[i + 3] * keep);
        }
    }

    public static RgbaImage Composite(IEnumerable<RgbaImage> layers)
    {
        var list = layers as IReadOnlyList<RgbaImage> ?? layers.ToList();
        var acc = CompositePremultiplied(list);
        var img = new RgbaImage(list[0].Width, list[0].Height);
        var p = img.Pixels;
        for (int i = 0; i < acc.Length; i += 4)
        {
            float a = acc[i + 3];
            if (a <= 0f)
            {
                continue;
            }

            p[i] = ToByte(acc[i] / a);
            p[i + 1] = ToByte(acc[i + 1] / a);
            p[i + 2] = ToByte(acc[i + 2] / a);
            p[i + 3] = ToByte(a);
        }

        return img;
    }

    public static RgbaImage FlattenOnWhite(IEnumerable<RgbaImage> layers)
    {
        var list = layers as IReadOnlyList<RgbaImage> ?? layers.ToList();
        var acc = CompositePremultiplied(list);
        var img = new RgbaImage(list[0].Width, list[0].Height);
        var p = img.Pixels;
        for (int i = 0; i < acc.Length; i += 4)
        {
            float white = 1f - acc[i + 3];
            p[i] = ToByte(acc[i] + white);
            p[i + 1] = ToByte(acc[i + 1] + white);
            p[i + 2] = ToByte(acc[i + 2] + white);
            p[i + 3] = 255;
        }

        return img;
    }

    public static byte ToByte(float v) => (byte)Math.Clamp((int)MathF.Round(v * 255f, MidpointRounding.AwayFromZero), 0, 255);
}
