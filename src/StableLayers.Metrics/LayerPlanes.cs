using StableLayers.Core.Imaging;

namespace StableLayers.Metrics;

/// <summary>
/// A layer converted once into the float planes the metrics read: alpha, and RGB flattened on white
/// and on black (onwhite = rgb*a + (1-a), onblack = rgb*a), all in [0,1], pixel-interleaved RGB.
/// </summary>
public sealed class LayerPlanes
{
    private static readonly float[] AlphaTable = Enumerable.Range(0, 256).Select(a => a * (1f / 255f)).ToArray();

    // premul[(a << 8) | c] = (c/255) * (a/255), computed exactly as the per-pixel float expression would be.
    private static readonly Lazy<float[]> PremultiplyTable = new(() =>
    {
        var t = new float[256 * 256];
        for (int a = 0; a < 256; a++)
        {
            for (int c = 0; c < 256; c++)
            {
                t[(a << 8) | c] = c * (1f / 255f) * (a * (1f / 255f));
            }
        }

        return t;
    });

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
        // Every element is written below, so skip zeroing: these arrays are large and allocation dominated.
        var alpha = GC.AllocateUninitializedArray<float>(n);
        var alphaBytes = GC.AllocateUninitializedArray<byte>(n);
        var onWhite = GC.AllocateUninitializedArray<float>(n * 3);
        var onBlack = GC.AllocateUninitializedArray<float>(n * 3);
        var p = image.Pixels;
        var premul = PremultiplyTable.Value;
        for (int i = 0; i < n; i++)
        {
            int ab = p[(i * 4) + 3];
            float a = AlphaTable[ab];
            float white = 1f - a;
            alphaBytes[i] = (byte)ab;
            alpha[i] = a;
            int row = ab << 8;
            int o = i * 3;
            float r = premul[row | p[i * 4]], g = premul[row | p[(i * 4) + 1]], b = premul[row | p[(i * 4) + 2]];
            onBlack[o] = r;
            onBlack[o + 1] = g;
            onBlack[o + 2] = b;
            onWhite[o] = r + white;
            onWhite[o + 1] = g + white;
            onWhite[o + 2] = b + white;
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
