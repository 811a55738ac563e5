namespace StableLayers.Core.Imaging;

/// <summary>
/// An 8-bit RGBA raster with straight (unpremultiplied) alpha, row-major, 4 bytes per pixel.
/// This is the exact pixel form of a layer file: nothing is lost between disk and memory.
/// </summary>
public sealed class RgbaImage
{
    public RgbaImage(int width, int height)
        : this(width, height, new byte[checked(width * height * 4)])
    {
    }

    public RgbaImage(int width, int height, byte[] pixels)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentNullException.ThrowIfNull(pixels);
        if (pixels.Length != checked(width * height * 4))
        {
            throw new ArgumentException($"expected {width * height * 4} bytes for {width}x{height} RGBA, got {pixels.Length}", nameof(pixels));
        }

        Width = width;
        Height = height;
        Pixels = pixels;
    }

    public int Width { get; }

    public int Height { get; }

    public int PixelCount => Width * Height;

    /// <summary>RGBA bytes, straight alpha.</summary>
    public byte[] Pixels { get; }

    public static RgbaImage Filled(int width, int height, byte r, byte g, byte b, byte a)
    {
        var img = new RgbaImage(width, height);
        var p = img.Pixels;
        for (int i = 0; i < p.Length; i += 4)
        {
            p[i] = r;
            p[i + 1] = g;
            p[i + 2] = b;
            p[i + 3] = a;
        }

        return img;
    }

    public RgbaImage Clone() => new(Width, Height, (byte[])Pixels.Clone());

    public bool SameSize(RgbaImage other) => other.Width == Width && other.Height == Height;

    /// <summary>Alpha channel as values in [0,1].</summary>
    public float[] AlphaFloats()
    {
        var a = new float[PixelCount];
        for (int i = 0; i < a.Length; i++)
        {
            a[i] = Pixels[(i * 4) + 3] / 255f;
        }

        return a;
    }

    /// <summary>True when every pixel has alpha 255.</summary>
    public bool IsOpaque()
    {
        for (int i = 3; i < Pixels.Length; i += 4)
        {
            if (Pixels[i] != 255)
            {
                return false;
            }
        }

        return true;
    }

    public bool PixelsEqual(RgbaImage other) => SameSize(other) && Pixels.AsSpan().SequenceEqual(other.Pixels);

    /// <summary>Channel-first floats in [-1,1]: 4 planes (R,G,B,A) of HxW, the model's input convention.</summary>
    public float[] ToChwSigned()
    {
        int n = PixelCount;
        var chw = new float[n * 4];
        for (int i = 0; i < n; i++)
        {
            for (int c = 0; c < 4; c++)
            {
                chw[(c * n) + i] = (Pixels[(i * 4) + c] / 127.5f) - 1f;
            }
        }

        return chw;
    }

    /// <summary>Inverse of <see cref="ToChwSigned"/>; values are clamped to [-1,1] and rounded to the nearest byte.</summary>
    public static RgbaImage FromChwSigned(ReadOnlySpan<float> chw, int width, int height)
    {
        int n = width * height;
        if (chw.Length != n * 4)
        {
            throw new ArgumentException($"expected {n * 4} values for 4x{height}x{width}, got {chw.Length}", nameof(chw));
        }

        var img = new RgbaImage(width, height);
        for (int i = 0; i < n; i++)
        {
            for (int c = 0; c < 4; c++)
            {
                float v = Math.Clamp(chw[(c * n) + i], -1f, 1f);
                img.Pixels[(i * 4) + c] = (byte)MathF.Round((v + 1f) * 127.5f, MidpointRounding.AwayFromZero);
            }
        }

        return img;
    }
}
