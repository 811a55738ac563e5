using System.Text.Json;
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

    /// <summary>Builds the encoder from <paramref name="folder"/>'s config.json on <paramref name="device"/> in <paramref name="dtype"/> and copies the weights in.</summary>
    public static (Qwen25VlTextEncoder Encoder, TextEncoderLoadReport Report) Load(string folder, Device device, ScalarType dtype)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentNullException.ThrowIfNull(device);
        if (!Directory.Exists(folder))
        {
            throw new BadInputException(folder, "text encoder folder does not exist");
        }

        var config = Qwen25VlTextConfig.Load(Path.Combine(folder, "config.json"));
        var encoder = new Qwen25VlTextEncoder(config, device, dtype);
        try
        {
            var report = LoadWeights(encoder, folder);
            return (encoder, report);
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
    }

    /// <summary>Copies the checkpoint in <paramref name="folder"/> into <paramref name="encoder"/>; every language-model tensor must match.</summary>
    public static TextEncoderLoadReport LoadWeights(Qwen25VlTextEncoder encoder, string folder)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(folder);
        var (files, weightMap) = ResolveFiles(folder);
        var opened = new List<SafetensorsFile>();
        try
        {
            foreach (var f in files)
            {
                opened.Add(SafetensorsFile.Open(f));
            }

            if (weightMap is not null)
            {
                foreach (var (key, shard) in weightMap)
                {
                    var file = opened.First(o => Path.GetFileName(o.Path) == shard);
                    if (!file.Contains(key))
                    {
                        throw new BadInputException(file.Path, $"{IndexName} places '{key}' in this shard, but it is not there");
                    }
                }
            }

            var targets = encoder.state_dict();
            var plan = new List<(SafetensorsFile File, string Key, string Name)>();
            var seenTargets = new HashSet<string>(StringComparer.Ordinal);
            var seenKeys = new HashSet<string>(StringComparer.Ordinal);
            var vision = new List<string>();
            var lmHead = new List<string>();
            var unexpected = new List<string>();
            var mismatched = new List<ShapeMismatch>();
            foreach (var file in opened)
            {
                foreach (var e in file.Entries)
                {
                    if (!seenKeys.Add(e.Name))
                    {
                        throw new BadInputException(file.Path, $"tensor '{e.Name}' appears in more than one shard");
                    }

                    if (VisionPrefixes.Any(p => e.Name.StartsWith(p, StringComparison.Ordinal)))
                    {
                        vision.Add(e.Name);
                        continue;
                    }

                    if (e.Name.StartsWith("lm_head.", StringComparison.Ordinal) || e.Name.StartsWith("language_model.lm_head.", StringComparison.Ordinal))
                    {
                        lmHead.Add(e.Name);
                        continue;
                    }

                    string? name = LanguagePrefixes.Where(p => e.Name.StartsWith(p, StringComparison.Ordinal))
                        .Select(p => e.Name[p.Length..]).FirstOrDefault();
                    if (name is null || !targets.TryGetValue(name, out var target))
                    {
                        unexpected.Add(e.Name);
                    }
                    else if (!seenTargets.Add(name))
                    {
                        throw new BadInputException(file.Path, $"'{e.Name}' is a second copy of '{name}' (two key layouts in one checkpoint)");
                    }
                    else if (!target.shape.SequenceEqual(e.Shape))
                    {
                        mismatched.Add(new ShapeMismatch(e.Name, target.shape, e.Shape, file.Path));
                    }
                    else if (e.ScalarType is null)
                    {
                        throw new BadInputException(file.Path, $"tensor '{e.Name}' has unsupported dtype {e.DType}");
                    }
                    else
                    {
                        plan.Add((file, e.Name, name));
                    }
                }
            }

            var weights = new LoadReport
            {
                Loaded = plan.Select(p => p.Name).ToList(),
                Missing = targets.Keys.Where(k => !seenTargets.Contains(k)).ToList(),
                Unexpected = unexpected,
                Mismatched = mismatched,
                Files = opened.Select(f => f.Path).ToList(),
            };
            if (!weights.IsExact)
            {
                throw new BadInputException(folder, "checkpoint does not match the Qwen2.5-VL language model: " + weights.Describe().ReplaceLineEndings("; "));
            }

            using var noGrad = no_grad();
            foreach (var (file, key, name) in plan)
            {
                using var scope = NewDisposeScope();
                var target = targets[name];
                target.copy_(file.Read(key).to(target.dtype, target.device));
            }

            return new TextEncoderLoadReport(weights, vision, lmHead);
        }
        finally
        {
            foreach (var f in opened)
            {
                f.Dispose();
            }
        }
    }

    private static (IReadOnlyList<string> Files, Dictionary<string, string>? WeightMap) ResolveFiles(string folder)
    {
        string indexPath = Path.Combine(folder, IndexName);
        if (File.Exists(indexPath))
        {
            Dictionary<string, string> map;
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
                map = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var p in doc.RootElement.GetProperty("weight_map").EnumerateObject())
                {
                    string file = p.Value.GetString() ?? "";
                    if (file.Length == 0 || file != Path.GetFileName(file))
                    {
                        throw new BadInputException(indexPath, $"weight_map entry '{p.Name}' names a bad file '{file}'");
                    }

                    map[p.Name] = file;
                }
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                throw new BadInputException(indexPath, "malformed index: " + ex.Message.ReplaceLineEndings(" "), ex);
            }

            var files = map.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).Select(f => Path.Combine(folder, f)).ToList();
            foreach (var f in files)
            {
                if (!File.Exists(f))
                {
                    throw new BadInputException(f, $"shard listed in {IndexName} is missing");
                }
            }

            return (files, map);
        }

        string single = Path.Combine(folder, WeightsName);
        return File.Exists(single)
            ? ([single], null)
            : throw new BadInputException(folder, $"no {WeightsName} or {IndexName} in this folder");
    }
}
