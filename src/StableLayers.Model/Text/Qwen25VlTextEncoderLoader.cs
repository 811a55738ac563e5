using StableLayers.Core;
using StableLayers.Model.Weights;
using static TorchSharp.torch;

namespace StableLayers.Model.Text;

/// <summary>What <see cref="Qwen25VlTextEncoderLoader.Load"/> read from a text_encoder folder.</summary>
/// <param name="Weights">Matching of the language model's state against the checkpoint (after key renaming).</param>
/// <param name="IgnoredVision">Vision-tower tensors in the checkpoint (<c>visual.*</c>, <c>model.visual.*</c>), not loaded.</param>
/// <param name="IgnoredLmHead">lm_head tensors, not loaded (the encoder returns hidden states, not logits).</param>
public sealed record TextEncoderLoadReport(LoadReport Weights, IReadOnlyList<string> IgnoredVision, IReadOnlyList<string> IgnoredLmHead)
{
    public string Describe() =>
        $"{Weights.Describe()}; ignored {IgnoredVision.Count} vision-tower tensors and {IgnoredLmHead.Count} lm_head tensors";
}

/// <summary>
/// Loads the Qwen2.5-VL language model from a transformers folder (config.json + model.safetensors, or shards listed in
/// model.safetensors.index.json). Accepts the key layouts transformers versions write: <c>model.layers.N...</c>
/// (save_pretrained, the released files), <c>model.language_model.layers.N...</c> (in-memory names since 4.52) and
/// <c>language_model.model.layers.N...</c>.
/// </summary>
public static class Qwen25VlTextEncoderLoader
{
    public const string WeightsName = "model.safetensors";
    public const string IndexName = "model.safetensors.index.json";

    // Longest first: "model.language_model." must win over "model.".
    private static readonly string[] LanguagePrefixes = ["model.language_model.", "language_model.model.", "language_model.", "model."];
    private static readonly string[] VisionPrefixes = ["visual.", "model.visual.", "vision_tower.", "model.vision_tower."];

    /// <summary>
    /// Builds the encoder from <paramref name="folder"/>'s config.json directly on <paramref name="device"/> in
    /// <paramref name="dtype"/> (<see cref="ModuleAllocation"/>) and streams the weights in shard by shard
    /// (<see cref="SafetensorsCheckpoint"/>, base name "model"), after checking every shard's header against the index.
    /// </summary>
    public static (Qwen25VlTextEncoder Encoder, TextEncoderLoadReport Report) Load(string folder, Device device, ScalarType dtype)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentNullException.ThrowIfNull(device);
        if (!Directory.Exists(folder))
        {
            throw new BadInputException(folder, "text encoder folder does not exist");
        }

        var config = Qwen25VlTextConfig.Load(Path.Combine(folder, "config.json"));
        // Headers and index first: a broken checkpoint fails before the (possibly 15 GB) module is allocated.
        using var checkpoint = SafetensorsCheckpoint.Open(folder, SafetensorsCheckpoint.TransformersBaseName);
        var encoder = ModuleAllocation.Create(() => new Qwen25VlTextEncoder(config, device, dtype), device, dtype);
        try
        {
            var report = LoadWeights(encoder, checkpoint);
            return (encoder, report);
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
    }

    /// <summary>Copies <paramref name="checkpoint"/> into <paramref name="encoder"/>; every language-model tensor must match.</summary>
    public static TextEncoderLoadReport LoadWeights(Qwen25VlTextEncoder encoder, SafetensorsCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(checkpoint);
        var names = checkpoint.TensorFiles.Keys.Order(StringComparer.Ordinal).ToList();
        var vision = names.Where(IsVision).ToList();
        var lmHead = names.Where(IsLmHead).ToList();
        LoadReport weights;
        try
        {
            weights = checkpoint.LoadInto(encoder, new LoadOptions { KeyMap = MapKey });
        }
        catch (BadInputException ex) when (ex.FilePath == checkpoint.Folder)
        {
            throw new BadInputException(checkpoint.Folder, "checkpoint does not match the Qwen2.5-VL language model: " + ex.Problem.ReplaceLineEndings("; "), ex);
        }

        return new TextEncoderLoadReport(weights, vision, lmHead);
    }

    /// <summary>The encoder's state name for a checkpoint key; null for vision-tower and lm_head tensors; unknown keys unchanged (reported as unexpected).</summary>
    public static string? MapKey(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (IsVision(key) || IsLmHead(key))
        {
            return null;
        }

        return LanguagePrefixes.Where(p => key.StartsWith(p, StringComparison.Ordinal)).Select(p => key[p.Length..]).FirstOrDefault() ?? key;
    }

    private static bool IsVision(string key) => VisionPrefixes.Any(p => key.StartsWith(p, StringComparison.Ordinal));

    private static bool IsLmHead(string key) =>
        key.StartsWith("lm_head.", StringComparison.Ordinal) || key.StartsWith("language_model.lm_head.", StringComparison.Ordinal);
}
