using System.IO.Compression;
using System.Text.Json;
using StableLayers.Core.Formats;
using StableLayers.Core.Formats.OpenRaster;
using StableLayers.Core.Formats.Psd;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;

namespace StableLayers.Server.Api;

/// <summary>A finished job's downloads, encoded in memory on request (nothing is written to disk).</summary>
public static class ResultFiles
{
    private static readonly JsonSerializerOptions ManifestJson = new() { WriteIndented = true };

    public static byte[] Psd(LayerStack stack) => PsdWriter.Encode(stack);

    public static byte[] Ora(LayerStack stack)
    {
        using var ms = new MemoryStream();
        OpenRasterWriter.Write(ms, stack);
        return ms.ToArray();
    }

    /// <summary>A zip that unpacks to a layered folder (docs/EVALUATION.md): layer_NN.png, composite.png, input.png, layers.json.</summary>
    public static byte[] Zip(LayerStack stack, RgbaImage input, string? source)
    {
        ArgumentNullException.ThrowIfNull(stack);
        using var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            var entries = new List<LayeredFolderManifest.LayerEntry>();
            for (int i = 0; i < stack.Count; i++)
            {
                string file = $"layer_{i:D2}.png";
                Add(zip, file, PngCodec.Encode(stack[i]));
                entries.Add(new LayeredFolderManifest.LayerEntry(file, stack.Layers[i].Name));
            }

            Add(zip, LayeredFolder.CompositeFile, PngCodec.EncodeRgb(stack.FlattenOnWhite()));
            Add(zip, LayeredFolder.InputFile, PngCodec.EncodeRgb(input));
            var manifest = new LayeredFolderManifest { Width = stack.Width, Height = stack.Height, Layers = entries, Source = source };
            Add(zip, LayeredFolder.ManifestFile, JsonSerializer.SerializeToUtf8Bytes(manifest, ManifestJson));
        }

        return ms.ToArray();
    }

    private static void Add(ZipArchive zip, string name, byte[] data)
    {
        // PNGs are compressed already; storing them saves time for nothing lost.
        var entry = zip.CreateEntry(name, name.EndsWith(".png", StringComparison.Ordinal) ? CompressionLevel.NoCompression : CompressionLevel.Optimal);
        using var s = entry.Open();
        s.Write(data);
    }
}
