using StableLayers.Core.Imaging;

namespace StableLayers.Metrics;

/// <summary>
/// A layer converted once into the float planes the metrics read: alpha, and RGB flattened on white
/// and on black (onwhite = rgb*a + (1-a), onblack = rgb*a), all in [0,1], pixel-interleaved RGB.
/// </summary>
public sealed class LayerPlanes
{
    private LayerPlanes(int width, int height, float[] alpha, float[] onWhite, float[] onBlack, byte[] alphaBytes)
    {
        Width = width;
        Height = height;
        Alpha = alpha;
        OnWhite = onWhite;
        OnBlack = onBlack;
        AlphaBytes = alphaBytes;
    }

    public int Width { get; }

    public int Height { get; }

    public int PixelCount => Width * Height;

    /// <summary>Alpha in [0,1], one value per pixel.</summary>
    public float[] Alpha { get; }

    /// <summary>Raw alpha bytes, for exact thresholds (alpha &gt; 0.1 is byte &gt;= 26).</summary>
    public byte[] AlphaBytes { get; }

    /// <summary>RGB composited over white, 3 values per pixel.</summary>
    public float[] OnWhite { get; }

    /// <summary>RGB composited over black (premultiplied colour), 3 values per pixel.</summary>
    public float[] OnBlack { get; }

    public static LayerPlanes From(RgbaImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        int n = image.PixelCount;
        var alpha = new float[n];
        var alphaBytes = new byte[n];
        var onWhite = new float[n * 3];
        var onBlack = new float[n * 3];
        var p = image.Pixels;
        const float inv = 1f / 255f;
        for (int i = 0; i < n; i++)
        {
            byte ab = p[(i * 4) + 3];
            float a = ab * inv;
            alphaBytes[i] = ab;
            alpha[i] = a;
            for (int c = 0; c < 3; c++)
            {
                float v = p[(i * 4) + c] * inv * a;
                onBlack[(i * 3) + c] = v;
                onWhite[(i * 3) + c] = v + (1f - a);
            }
        }

        return new LayerPlanes(image.Width, image.Height, alpha, onWhite, onBlack, alphaBytes);
    }

    /// <summary>RGB of an opaque image (e.g. a composite.png) as an on-white plane.</summary>
    public static float[] RgbPlane(RgbaImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        return From(image).OnWhite;
    }
}
