using SkiaSharp;
using StableLayers.Core;
using StableLayers.Core.Imaging;
using StableLayers.Server.Jobs;

namespace StableLayers.Server.Api;

/// <summary>
/// Checks an uploaded file: its type from its first bytes (the name and the declared content type are not trusted),
/// its pixel count from the header before anything is decoded, then decodes it exactly to RGBA.
/// </summary>
public static class Upload
{
    /// <summary>PNG, JPEG or WebP by magic bytes; null for anything else.</summary>
    public static UploadFormat? Sniff(ReadOnlySpan<byte> head)
    {
        if (head.StartsWith((ReadOnlySpan<byte>)[0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]))
        {
            return UploadFormat.Png;
        }

        if (head.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8, 0xFF]))
        {
            return UploadFormat.Jpeg;
        }

        if (head.Length >= 12 && head[..4].SequenceEqual("RIFF"u8) && head[8..12].SequenceEqual("WEBP"u8))
        {
            return UploadFormat.WebP;
        }

        return null;
    }

    /// <summary>Sniffs, checks the pixel limit and decodes; every refusal is an <see cref="ApiException"/> with a clear message.</summary>
    public static (RgbaImage Image, UploadFormat Format) Decode(byte[] bytes, long maxPixels)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        if (bytes.Length == 0)
        {
            throw new ApiException(400, "the uploaded file is empty");
        }

        var format = Sniff(bytes) ?? throw new ApiException(415,
            "not a PNG, JPEG or WebP image (the type is read from the file's content, not its name)");

        // The header alone gives the size: refuse an oversized image before allocating its pixels.
        using (var stream = new SKMemoryStream(bytes))
        using (var codec = SKCodec.Create(stream))
        {
            if (codec is null)
            {
                throw new ApiException(400, $"the {Name(format)} image is corrupt (its header cannot be read)");
            }

            long w = codec.Info.Width, h = codec.Info.Height;
            if (w * h > maxPixels)
            {
                throw new ApiException(413, $"the image is {w}x{h} = {w * h / 1e6:F1} MP, over the server's limit of {maxPixels / 1e6:F1} MP");
            }
        }

        try
        {
            return (PngCodec.Decode(bytes, "upload", maxPixels), format);
        }
        catch (BadInputException e)
        {
            throw new ApiException(400, $"the {Name(format)} image cannot be decoded: {e.Message}");
        }
    }

    public static string Name(UploadFormat format) => format switch
    {
        UploadFormat.Png => "PNG",
        UploadFormat.Jpeg => "JPEG",
        UploadFormat.WebP => "WebP",
        _ => format.ToString(),
    };

    /// <summary>A file name reduced to letters, digits, '.', '-' and '_' (at most 64), for display and download names only.</summary>
    public static string SafeName(string? fileName)
    {
        string name = Path.GetFileNameWithoutExtension(fileName ?? string.Empty);
        var chars = name.Where(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.').Take(64).ToArray();
        string safe = new string(chars).Trim('.');
        return safe.Length == 0 ? "image" : safe;
    }
}
