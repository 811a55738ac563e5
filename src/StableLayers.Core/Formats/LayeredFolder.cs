using System.Text.Json;
using System.Text.Json.Serialization;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;

namespace StableLayers.Core.Formats;

/// <summary>The <c>layers.json</c> manifest of a layered folder.</summary>
public sealed record LayeredFolderManifest
{
    [JsonPropertyName("width")]
    public int Width { get; init; }

    [JsonPropertyName("height")]
    public int Height { get; init; }

    [JsonPropertyName("layers")]
    public IReadOnlyList<LayerEntry> Layers { get; init; } = [];

    [JsonPropertyName("source")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Source { get; init; }

    [JsonPropertyName("license")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? License { get; init; }

    /// <summary>A text description of the design (synth writes one; prompt conditioning reads it).</summary>
    [JsonPropertyName("caption")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Caption { get; init; }

    public sealed record LayerEntry([property: JsonPropertyName("file")] string File, [property: JsonPropertyName("name")] string? Name);
}

/// <summary>Provenance carried along with a stack when it is written.</summary>
public sealed record LayerSource(string? Source, string? License, string? Caption = null);

/// <summary>
/// The layered-folder format (docs/EVALUATION.md): layer_NN.png (RGBA, full canvas, bottom first),
/// composite.png (RGB, flattened on white) and layers.json. Layers come from layer_*.png only.
/// </summary>
public static class LayeredFolder
{
    public const string ManifestFile = "layers.json";
    public const string CompositeFile = "composite.png";
    public const string InputFile = "input.png";

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    public static bool IsLayeredFolder(string dir) =>
        Directory.Exists(dir) && (File.Exists(Path.Combine(dir, ManifestFile)) || Directory.EnumerateFiles(dir, "layer_*.png").Any());

    public static LayerStack Read(string dir) => Read(dir, out _);

    public static LayerStack Read(string dir, out LayeredFolderManifest manifest)
    {
        if (!Directory.Exists(dir))
        {
            throw new BadInputException(dir, "layered folder not found");
        }

        string manifestPath = Path.Combine(dir, ManifestFile);
        manifest = ReadManifestOf(dir);
        if (!File.Exists(manifestPath) && manifest.Layers.Count == 0)
        {
            throw new BadInputException(dir, "no layers.json and no layer_*.png files");
        }

        if (manifest.Layers.Count == 0)
        {
            throw new BadInputException(manifestPath, "layers.json lists no layers");
        }

        var layers = new List<Layer>(manifest.Layers.Count);
        foreach (var entry in manifest.Layers)
        {
            string file = entry.File ?? string.Empty;
            if (!IsSafeLayerFileName(file))
            {
                throw new BadInputException(manifestPath, $"layer file name '{file}' is not a layer_*.png file inside the folder");
            }

            string path = Path.Combine(dir, file);
            if (!File.Exists(path))
            {
                throw new BadInputException(path, "missing layer file listed in layers.json");
            }

            var img = PngCodec.Read(path);
            if (layers.Count > 0 && !img.SameSize(layers[0].Image))
            {
                throw new BadInputException(path, $"layer is {img.Width}x{img.Height} but {manifest.Layers[0].File} is {layers[0].Image.Width}x{layers[0].Image.Height}");
            }

            if (manifest.Width > 0 && (img.Width != manifest.Width || img.Height != manifest.Height))
            {
                throw new BadInputException(path, $"layer is {img.Width}x{img.Height} but layers.json says {manifest.Width}x{manifest.Height}");
            }

            layers.Add(new Layer(entry.Name ?? Path.GetFileNameWithoutExtension(file), img));
        }

        return new LayerStack(layers);
    }

    /// <summary>Reads <c>input.png</c> if the folder has one (prediction folders written by decompose do).</summary>
    public static RgbaImage? ReadInput(string dir)
    {
        string path = Path.Combine(dir, InputFile);
        return File.Exists(path) ? PngCodec.Read(path) : null;
    }

    /// <summary>Reads <c>composite.png</c> if present.</summary>
    public static RgbaImage? ReadComposite(string dir)
    {
        string path = Path.Combine(dir, CompositeFile);
        return File.Exists(path) ? PngCodec.Read(path) : null;
    }

    public static void Write(string dir, LayerStack stack, LayerSource? source = null, RgbaImage? input = null)
    {
        ArgumentNullException.ThrowIfNull(stack);
        Directory.CreateDirectory(dir);

        // Remove stale layers from an earlier, longer stack so readers globbing layer_*.png see only ours.
        foreach (var stale in Directory.EnumerateFiles(dir, "layer_*.png"))
        {
            File.Delete(stale);
        }

        var entries = new List<LayeredFolderManifest.LayerEntry>(stack.Count);
        for (int i = 0; i < stack.Count; i++)
        {
            string file = $"layer_{i:D2}.png";
            PngCodec.Write(Path.Combine(dir, file), stack[i]);
            entries.Add(new LayeredFolderManifest.LayerEntry(file, stack.Layers[i].Name));
        }

        PngCodec.WriteRgb(Path.Combine(dir, CompositeFile), stack.FlattenOnWhite());
        if (input is not null)
        {
            PngCodec.WriteRgb(Path.Combine(dir, InputFile), input);
        }

        var manifest = new LayeredFolderManifest
        {
            Width = stack.Width,
            Height = stack.Height,
            Layers = entries,
            Source = source?.Source,
            License = source?.License,
            Caption = source?.Caption,
        };

        // The manifest goes last: a folder with a manifest is complete.
        AtomicFile.WriteAllText(Path.Combine(dir, ManifestFile), JsonSerializer.Serialize(manifest, JsonOptions));
    }

    /// <summary>The folder's manifest alone (no pixels read): layers.json, or one built from the layer_*.png names.</summary>
    public static LayeredFolderManifest ReadManifestOf(string dir)
    {
        string path = Path.Combine(dir, ManifestFile);
        if (File.Exists(path))
        {
            return ReadManifest(path);
        }

        var files = Directory.EnumerateFiles(dir, "layer_*.png").Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToList();
        return new LayeredFolderManifest { Layers = files.Select(f => new LayeredFolderManifest.LayerEntry(f, Path.GetFileNameWithoutExtension(f))).ToList() };
    }

    private static LayeredFolderManifest ReadManifest(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<LayeredFolderManifest>(File.ReadAllText(path), JsonOptions)
                ?? throw new BadInputException(path, "layers.json is empty");
        }
        catch (JsonException e)
        {
            throw new BadInputException(path, $"malformed layers.json ({e.Message.Split('\n')[0]})");
        }
    }

    private static bool IsSafeLayerFileName(string file) =>
        file.Length > 0 && file == Path.GetFileName(file) && file != "." && file != ".." && !file.Contains('/') && !file.Contains('\\')
        && !string.Equals(file, CompositeFile, StringComparison.OrdinalIgnoreCase) && !string.Equals(file, InputFile, StringComparison.OrdinalIgnoreCase);
}
