using System.Text.Json;
using System.Text.Json.Nodes;
using StableLayers.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Weights;

/// <summary>
/// Loads and saves a module's state in a diffusers model folder: diffusion_pytorch_model.safetensors, or shards
/// diffusion_pytorch_model-0000i-of-0000n.safetensors with diffusion_pytorch_model.safetensors.index.json
/// ({"metadata": {"total_size"}, "weight_map": {name: shard}}), plus config.json. Tensors are matched by their
/// state-dict names and streamed one at a time.
/// </summary>
public static class DiffusersCheckpoint
{
    public const string WeightsName = "diffusion_pytorch_model.safetensors";
    public const string IndexName = "diffusion_pytorch_model.safetensors.index.json";
    public const string ConfigName = "config.json";

    /// <summary>diffusers' default max_shard_size ("10GB").</summary>
    public const long DefaultMaxShardBytes = 10_000_000_000;

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>
    /// Copies the checkpoint in <paramref name="folder"/> into <paramref name="module"/>'s parameters and buffers.
    /// </summary>
    /// <param name="dtype">If set, the module's floating-point state is first converted to it (module.to(dtype)); tensors are
    /// always converted to the dtype of the parameter they are copied into.</param>
    /// <param name="strict">Throw <see cref="BadInputException"/> (naming the folder and listing the problems) unless every
    /// name and shape matches; checked from the headers before anything is copied.</param>
    public static LoadReport Load(nn.Module module, string folder, ScalarType? dtype = null, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(folder);
        var files = ResolveFiles(folder);
        var opened = new List<SafetensorsFile>();
        try
        {
            foreach (var f in files)
            {
                opened.Add(SafetensorsFile.Open(f));
            }

            if (dtype is { } d)
            {
                module.to(d);
            }

            var targets = module.state_dict();
            var (plan, report) = Match(targets, opened);
            if (strict && !report.IsExact)
            {
                throw new BadInputException(folder, "checkpoint does not match the model:\n" + report.Describe());
            }

            using var noGrad = no_grad();
            foreach (var (file, name) in plan)
            {
                using var scope = NewDisposeScope();
                var target = targets[name];
                var src = file.Read(name);
                target.copy_(src.to(target.dtype, target.device));
            }

            return report;
        }
        finally
        {
            foreach (var f in opened)
            {
                f.Dispose();
            }
        }
    }

    /// <summary>
    /// Writes <paramref name="module"/>'s state (floating-point tensors stored as <paramref name="dtype"/>) and
    /// <paramref name="config"/> as config.json. Every file is written atomically (temp file + rename); shards are written
    /// before the index, and files of an earlier save that the new layout does not use are removed last.
    /// </summary>
    public static void Save(nn.Module module, string folder, object config, ScalarType dtype, long maxShardBytes = DefaultMaxShardBytes)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        Directory.CreateDirectory(folder);
        AtomicFile.WriteAllText(Path.Combine(folder, ConfigName),
            JsonSerializer.Serialize(config, config.GetType(), Indented));

        var state = module.state_dict().ToList();
        var shards = new List<List<KeyValuePair<string, Tensor>>> { new() };
        long current = 0, total = 0;
        foreach (var kv in state)
        {
            long bytes = SafetensorsWriter.StoredBytes(kv.Value, dtype);
            if (shards[^1].Count > 0 && current + bytes > maxShardBytes)
            {
                shards.Add([]);
                current = 0;
            }

            shards[^1].Add(kv);
            current += bytes;
            total += bytes;
        }

        var metadata = new Dictionary<string, string> { ["format"] = "pt" };
        var written = new HashSet<string>(StringComparer.Ordinal);
        if (shards.Count == 1)
        {
            SafetensorsWriter.WriteFile(Path.Combine(folder, WeightsName), shards[0], dtype, metadata);
            written.Add(WeightsName);
        }
        else
        {
            var weightMap = new JsonObject();
            for (int i = 0; i < shards.Count; i++)
            {
                string name = $"diffusion_pytorch_model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
                SafetensorsWriter.WriteFile(Path.Combine(folder, name), shards[i], dtype, metadata);
                written.Add(name);
                foreach (var kv in shards[i])
                {
                    weightMap[kv.Key] = name;
                }
            }

            var index = new JsonObject
            {
                ["metadata"] = new JsonObject { ["total_size"] = total },
                ["weight_map"] = weightMap,
            };
            AtomicFile.WriteAllText(Path.Combine(folder, IndexName), index.ToJsonString(Indented));
            written.Add(IndexName);
        }

        RemoveStale(folder, written);
    }

    private static void RemoveStale(string folder, HashSet<string> written)
    {
        var candidates = Directory.EnumerateFiles(folder, "diffusion_pytorch_model-*-of-*.safetensors")
            .Append(Path.Combine(folder, WeightsName))
            .Append(Path.Combine(folder, IndexName));
        foreach (var path in candidates)
        {
            if (!written.Contains(Path.GetFileName(path)) && File.Exists(path))
            {
                File.Delete(path);
            }
        }
    }

    /// <summary>The safetensors files of a folder: the index's shards if an index exists, else the single file.</summary>
    public static IReadOnlyList<string> ResolveFiles(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        string indexPath = Path.Combine(folder, IndexName);
        if (File.Exists(indexPath))
        {
            var files = ReadWeightMap(indexPath).Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)
                .Select(f => Path.Combine(folder, f)).ToList();
            foreach (var f in files)
            {
                if (!File.Exists(f))
                {
                    throw new BadInputException(f, $"shard listed in {IndexName} is missing");
                }
            }

            return files;
        }

        string single = Path.Combine(folder, WeightsName);
        return File.Exists(single)
            ? [single]
            : throw new BadInputException(folder, $"no {WeightsName} or {IndexName} in this folder");
    }

    private static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            var map = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var p in doc.RootElement.GetProperty("weight_map").EnumerateObject())
            {
                string file = p.Value.GetString() ?? "";
                if (file.Length == 0 || file != Path.GetFileName(file))
                {
                    throw new BadInputException(indexPath, $"weight_map entry '{p.Name}' names a bad file '{file}'");
                }

                map[p.Name] = file;
            }

            return map;
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new BadInputException(indexPath, "malformed index: " + ex.Message, ex);
        }
    }

    private static (List<(SafetensorsFile File, string Name)> Plan, LoadReport Report) Match(
        Dictionary<string, Tensor> targets, List<SafetensorsFile> files)
    {
        var plan = new List<(SafetensorsFile, string)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var unexpected = new List<string>();
        var mismatched = new List<ShapeMismatch>();
        foreach (var file in files)
        {
            foreach (var e in file.Entries)
            {
                if (!seen.Add(e.Name))
                {
                    throw new BadInputException(file.Path, $"tensor '{e.Name}' appears in more than one shard");
                }

                if (!targets.TryGetValue(e.Name, out var t))
                {
                    unexpected.Add(e.Name);
                }
                else if (!t.shape.SequenceEqual(e.Shape))
                {
                    mismatched.Add(new ShapeMismatch(e.Name, t.shape, e.Shape, file.Path));
                }
                else if (e.ScalarType is null)
                {
                    throw new BadInputException(file.Path, $"tensor '{e.Name}' has unsupported dtype {e.DType}");
                }
                else
                {
                    plan.Add((file, e.Name));
                }
            }
        }

        var report = new LoadReport
        {
            Loaded = plan.Select(p => p.Item2).ToList(),
            Missing = targets.Keys.Where(k => !seen.Contains(k)).ToList(),
            Unexpected = unexpected,
            Mismatched = mismatched,
            Files = files.Select(f => f.Path).ToList(),
        };
        return (plan, report);
    }
}
