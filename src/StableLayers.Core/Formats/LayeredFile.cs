using StableLayers.Core.Formats.OpenRaster;
using StableLayers.Core.Formats.Psd;
using StableLayers.Core.Layers;

namespace StableLayers.Core.Formats;

/// <summary>The layered formats <see cref="LayeredFile"/> reads and writes.</summary>
public enum LayeredFormat
{
    /// <summary>A layered folder (layer_NN.png + layers.json + composite.png), docs/EVALUATION.md.</summary>
    Folder,

    /// <summary>Photoshop .psd (8-bit RGB/grayscale).</summary>
    Psd,

    /// <summary>OpenRaster .ora.</summary>
    OpenRaster,
}

/// <summary>A stack read from any layered format, with what the reader could not render exactly.</summary>
public sealed record LayeredFileContent(LayerStack Stack, LayeredFormat Format, IReadOnlyList<string> Warnings, LayerSource? Source);

/// <summary>
/// One entry point for layered files, so the CLI's <c>convert</c> and the data loaders need not care about the
/// format: a directory is a layered folder, otherwise the extension (.psd/.ora) decides, falling back to the
/// file's magic bytes on read.
/// </summary>
public static class LayeredFile
{
    /// <summary>Picks the format of an existing input: directory, then extension, then magic bytes.</summary>
    public static LayeredFormat DetectForRead(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path))
        {
            return LayeredFormat.Folder;
        }

        if (!File.Exists(path))
        {
            throw new BadInputException(path, "no such file or folder");
        }

        if (FromExtension(path) is LayeredFormat byExt)
        {
            return byExt;
        }

        Span<byte> magic = stackalloc byte[4];
        int n;
        using (var fs = File.OpenRead(path))
        {
            n = fs.ReadAtLeast(magic, 4, throwOnEndOfStream: false);
        }

        if (n == 4 && magic.SequenceEqual("8BPS"u8))
        {
            return LayeredFormat.Psd;
        }

        if (n == 4 && magic.SequenceEqual("PK\u0003\u0004"u8))
        {
            return LayeredFormat.OpenRaster;
        }

        throw new BadInputException(path, "not a layered file (expected a layered folder, .psd or .ora)");
    }

    /// <summary>Picks the output format: .psd / .ora by extension, anything else (no extension, or an existing directory) is a folder.</summary>
    public static LayeredFormat DetectForWrite(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path))
        {
            return LayeredFormat.Folder;
        }

        if (FromExtension(path) is LayeredFormat byExt)
        {
            return byExt;
        }

        if (Path.HasExtension(path))
        {
            throw new BadInputException(path, $"unknown layered output type '{Path.GetExtension(path)}' (use a folder, .psd or .ora)");
        }

        return LayeredFormat.Folder;
    }

    /// <summary>Reads the visible layers bottom first, opacity baked in (see <see cref="ReadContent"/> for warnings).</summary>
    public static LayerStack Read(string path, bool addWhiteBackground = false) => ReadContent(path, addWhiteBackground).Stack;

    /// <summary>
    /// Reads any layered format. <paramref name="addWhiteBackground"/> applies the ground-truth convention (white
    /// opaque layer 0 under a bottom layer that does not cover the canvas) to PSD/ORA; folders are returned as stored.
    /// </summary>
    public static LayeredFileContent ReadContent(string path, bool addWhiteBackground = false)
    {
        var format = DetectForRead(path);
        switch (format)
        {
            case LayeredFormat.Folder:
                var stack = LayeredFolder.Read(path, out var manifest);
                var source = manifest.Source is null && manifest.License is null && manifest.Caption is null
                    ? null
                    : new LayerSource(manifest.Source, manifest.License, manifest.Caption);
                return new LayeredFileContent(stack, format, [], source);
            case LayeredFormat.Psd:
                var psd = PsdReader.Read(path);
                return new LayeredFileContent(psd.ToLayerStack(addWhiteBackground), format, psd.Warnings, null);
            default:
                var ora = OpenRasterReader.Read(path);
                return new LayeredFileContent(ora.ToLayerStack(addWhiteBackground), format, ora.Warnings, null);
        }
    }

    /// <summary>Writes <paramref name="stack"/> in the format chosen by <see cref="DetectForWrite"/>; provenance is kept only by folders.</summary>
    public static LayeredFormat Write(string path, LayerStack stack, LayerSource? source = null)
    {
        ArgumentNullException.ThrowIfNull(stack);
        var format = DetectForWrite(path);
        switch (format)
        {
            case LayeredFormat.Folder:
                LayeredFolder.Write(path, stack, source);
                break;
            case LayeredFormat.Psd:
                PsdWriter.Write(path, stack);
                break;
            default:
                OpenRasterWriter.Write(path, stack);
                break;
        }

        return format;
    }

    /// <summary>Converts between any two layered formats; returns the reader's warnings (for the CLI to print).</summary>
    public static IReadOnlyList<string> Convert(string input, string output, bool addWhiteBackground = false)
    {
        var content = ReadContent(input, addWhiteBackground);
        Write(output, content.Stack, content.Source);
        return content.Warnings;
    }

    private static LayeredFormat? FromExtension(string path) => Path.GetExtension(path).ToUpperInvariant() switch
    {
        ".PSD" => LayeredFormat.Psd,
        ".ORA" => LayeredFormat.OpenRaster,
        _ => null,
    };
}
