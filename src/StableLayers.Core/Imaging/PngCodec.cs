using SkiaSharp;

namespace StableLayers.Core.Imaging;

/// <summary>
/// Exact 8-bit RGBA PNG (and other raster) I/O. Decoding goes through <see cref="SKCodec"/> into
/// unpremultiplied RGBA without colour-space conversion, so bytes on disk are bytes in memory;
/// grey, palette, RGB and 16-bit inputs are converted by the codec to 8-bit RGBA.
/// </summary>
public static class PngCodec
{
    public static RgbaImage Read(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (FileNotFoundException)
        {
            throw new BadInputException(path, "file not found");
        }
        catch (DirectoryNotFoundException)
        {
            throw new BadInputException(path, "file not found");
        }

        return Decode(bytes, path);
    }

    /// <summary>Decodes PNG/JPEG/WebP/BMP/GIF bytes; <paramref name="name"/> is used in error messages; the pixel limit defaults to <see cref="ImageLimits.MaxPixels"/>.</summary>
    public static RgbaImage Decode(byte[] encoded, string name, long? maxPixels = null)
    {
        if (encoded.Length == 0)
        {
            throw new BadInputException(name, "empty file");
        }

        ArgumentNullException.ThrowIfNull(encoded);
        using var stream = new SKMemoryStream(encoded);
        using var codec = SKCodec.Create(stream, out var createResult);
        if (codec is null)
        {
            throw new BadInputException(name, $"not a readable image ({Describe(createResult)})");
        }

        var info = codec.Info;
        ImageLimits.Check(name, info.Width, info.Height, maxPixels);
        var target = new SKImageInfo(info.Width, info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var pixels = new byte[checked(info.Width * info.Height * 4)];
        SKCodecResult result;
        unsafe
        {
            fixed (byte* p = pixels)
            {
                result = codec.GetPixels(target, (IntPtr)p);
            }
        }

        if (result != SKCodecResult.Success)
        {
            // IncompleteInput means a truncated file: Skia fills the rest with zeros, which we must not accept silently.
            throw new BadInputException(name, result == SKCodecResult.IncompleteInput ? "truncated image data" : $"image could not be decoded ({Describe(result)})");
        }

        return new RgbaImage(info.Width, info.Height, pixels);
    }

    public static byte[] Encode(RgbaImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        return PngWriter.Encode(image.Width, image.Height, PngColorType.Rgba, 8, image.Pixels);
    }

    /// <summary>Encodes as 8-bit RGB PNG (alpha dropped); for composites, which are opaque by definition.</summary>
    public static byte[] EncodeRgb(RgbaImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var rgb = new byte[image.PixelCount * 3];
        for (int i = 0, j = 0; i < image.Pixels.Length; i += 4, j += 3)
        {
            rgb[j] = image.Pixels[i];
            rgb[j + 1] = image.Pixels[i + 1];
            rgb[j + 2] = image.Pixels[i + 2];
        }

        return PngWriter.Encode(image.Width, image.Height, PngColorType.Rgb, 8, rgb);
    }

    public static void Write(string path, RgbaImage image) => AtomicFile.WriteAllBytes(path, Encode(image));

    public static void WriteRgb(string path, RgbaImage image) => AtomicFile.WriteAllBytes(path, EncodeRgb(image));

    private static string Describe(SKCodecResult r) => r switch
    {
        SKCodecResult.IncompleteInput => "truncated",
        SKCodecResult.InvalidInput => "invalid data",
        SKCodecResult.Unimplemented => "unsupported format",
        SKCodecResult.ErrorInInput => "corrupt data",
        _ => r.ToString(),
    };
}
