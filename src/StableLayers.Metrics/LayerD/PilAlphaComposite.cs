using StableLayers.Core.Imaging;

namespace StableLayers.Metrics.LayerD;

/// <summary>
/// Pillow's <c>Image.alpha_composite(dst, src)</c> ("src over dst") on 8-bit straight-alpha RGBA, bit for bit:
/// the integer arithmetic of Pillow's libImaging/AlphaComposite.c (7 extra precision bits, divisions by 255
/// done as <c>((x &gt;&gt; 8) + x) &gt;&gt; 8</c> after adding a rounding half). Where src alpha is 0 the dst pixel is
/// copied unchanged, including the colour of fully transparent dst pixels.
/// </summary>
public static class PilAlphaComposite
{
    private const int PrecisionBits = 7;

    // Per (src alpha, dst alpha): coef1 of the colour blend and the output alpha. Index = (sa << 8) | da.
    private static readonly uint[] Coef1Table = BuildCoef1Table();
    private static readonly byte[] OutAlphaTable = BuildOutAlphaTable();

    /// <summary>Returns a new image: <paramref name="src"/> composited over <paramref name="dst"/>.</summary>
    public static RgbaImage Composite(RgbaImage dst, RgbaImage src)
    {
        ArgumentNullException.ThrowIfNull(dst);
        ArgumentNullException.ThrowIfNull(src);
        if (!dst.SameSize(src))
        {
            throw new ArgumentException($"images differ in size: {dst.Width}x{dst.Height} vs {src.Width}x{src.Height}", nameof(src));
        }

        var output = new byte[dst.Pixels.Length];
        Composite(dst.Pixels, src.Pixels, output);
        return new RgbaImage(dst.Width, dst.Height, output);
    }

    /// <summary>Composites whole RGBA buffers (4 bytes per pixel); all three spans have the same length.</summary>
    public static void Composite(ReadOnlySpan<byte> dst, ReadOnlySpan<byte> src, Span<byte> output)
    {
        if (dst.Length != src.Length || output.Length != dst.Length || (dst.Length & 3) != 0)
        {
            throw new ArgumentException("dst, src and output must be RGBA buffers of the same length");
        }

        for (int i = 0; i < dst.Length; i += 4)
        {
            CompositePixel(dst, src, output, i);
        }
    }

    /// <summary>Composites the pixels of rows [y0,y1) and columns [x0,x1) only; the caller has filled the rest of output.</summary>
    internal static void CompositeRegion(ReadOnlySpan<byte> dst, ReadOnlySpan<byte> src, Span<byte> output, int width, int x0, int y0, int x1, int y1)
    {
        for (int y = y0; y < y1; y++)
        {
            int end = ((y * width) + x1) * 4;
            for (int i = ((y * width) + x0) * 4; i < end; i += 4)
            {
                CompositePixel(dst, src, output, i);
            }
        }
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static void CompositePixel(ReadOnlySpan<byte> dst, ReadOnlySpan<byte> src, Span<byte> output, int i)
    {
        uint sa = src[i + 3];
        if (sa == 0)
        {
            output[i] = dst[i];
            output[i + 1] = dst[i + 1];
            output[i + 2] = dst[i + 2];
            output[i + 3] = dst[i + 3];
            return;
        }

        int t = (int)((sa << 8) | dst[i + 3]);
        uint coef1 = Coef1Table[t];
        uint coef2 = (255u << PrecisionBits) - coef1;
        output[i] = Channel((src[i] * coef1) + (dst[i] * coef2));
        output[i + 1] = Channel((src[i + 1] * coef1) + (dst[i + 1] * coef2));
        output[i + 2] = Channel((src[i + 2] * coef1) + (dst[i + 2] * coef2));
        output[i + 3] = OutAlphaTable[t];
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static byte Channel(uint tmp) => (byte)(ShiftForDiv255(tmp + (0x80u << PrecisionBits)) >> PrecisionBits);

    private static uint ShiftForDiv255(uint a) => ((a >> 8) + a) >> 8;

    private static uint[] BuildCoef1Table()
    {
        var coef = new uint[256 * 256];
        for (uint sa = 1; sa < 256; sa++)
        {
            for (uint da = 0; da < 256; da++)
            {
                uint outa255 = (sa * 255) + (da * (255 - sa));
                coef[(int)((sa << 8) | da)] = sa * 255 * 255 * (1u << PrecisionBits) / outa255;
            }
        }

        return coef;
    }

    private static byte[] BuildOutAlphaTable()
    {
        var outAlpha = new byte[256 * 256];
        for (uint sa = 1; sa < 256; sa++)
        {
            for (uint da = 0; da < 256; da++)
            {
                uint outa255 = (sa * 255) + (da * (255 - sa));
                outAlpha[(int)((sa << 8) | da)] = (byte)ShiftForDiv255(outa255 + 0x80);
            }
        }

        return outAlpha;
    }
}
