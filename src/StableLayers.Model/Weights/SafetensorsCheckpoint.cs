using System.Text.Json;
using System.Text.Json.Nodes;
using StableLayers.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Weights;

/// <summary>
/// A safetensors checkpoint in a folder, named by a base name as Hugging Face libraries do: either one file
/// {base}.safetensors, or shards {base}-0000i-of-0000n.safetensors listed by {base}.safetensors.index.json
/// ({"metadata": {"total_size"}, "weight_map": {tensor: shard}}). diffusers uses the base name
/// "diffusion_pytorch_model" (transformer, VAE), transformers uses "model" (e.g. the Qwen2.5-VL text encoder).
/// <see cref="Open"/> reads every shard's header and checks the index against the shards before any tensor data is
/// read; <see cref="LoadInto"/> then streams the tensors into a module shard by shard.
/// </summary>
public sealed class SafetensorsCheckpoint : IDisposable
{
    public const string DiffusersBaseName = "diffusion_pytorch_model";
    public const string TransformersBaseName = "model";

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    private readonly Dictionary<string, SafetensorsFile> _fileOf;

    private SafetensorsCheckpoint(string folder, string? indexPath, List<SafetensorsFile> files, Dictionary<string, SafetensorsFile> fileOf)
    {
        Folder = folder;
        IndexPath = indexPath;
        Files = files;
        _fileOf = fileOf;
    }

    public string Folder { get; }

    /// <summary>The index json of a sharded checkpoint; null for a single file.</summary>
    public string? IndexPath { get; }

    /// <summary>The files in shard order (one for a single-file checkpoint).</summary>
    public IReadOnlyList<SafetensorsFile> Files { get; }

    /// <summary>Every tensor name and the file that holds it.</summary>
    public IReadOnlyDictionary<string, SafetensorsFile> TensorFiles => _fileOf;

    /// <summary>The size of the largest file, the bound on host memory that <see cref="LoadInto"/> keeps to.</summary>
    public long LargestFileBytes => Files.Count == 0 ? 0 : Files.Max(f => f.Length);

    public static string SingleFileName(string baseName) => baseName + ".safetensors";

    public static string IndexFileName(string baseName) => baseName + ".safetensors.index.json";

    public static string ShardFileName(string baseName, int index, int count) => $"{baseName}-{index:D5}-of-{count:D5}.safetensors";

    /// <summary>
    /// The files of the checkpoint: the index's shards if the index exists, else the single file. Throws
    /// <see cref="BadInputException"/> naming the folder if neither exists, or naming a listed shard that is missing.
    /// </summary>
    public static IReadOnlyList<string> ResolveFiles(string folder, string baseName = DiffusersBaseName)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentException.ThrowIfNullOrEmpty(baseName);
        string indexPath = Path.Combine(folder, IndexFileName(baseName));
        if (File.Exists(indexPath))
        {
            return ShardPaths(folder, indexPath, ReadWeightMap(indexPath));
        }

        string single = Path.Combine(folder, SingleFileName(baseName));
        return File.Exists(single)
            ? [single]
            : throw new BadInputException(folder, $"no {SingleFileName(baseName)} or {IndexFileName(baseName)} in this folder");
    }

    /// <summary>
    /// Opens the checkpoint and validates it from the headers alone: every file's header (dtypes, shapes, offsets,
    /// length), and for a sharded checkpoint that each shard the index names exists, each tensor the index maps to a
    /// shard is in that shard, each shard's tensors are in the index, and no tensor is in two shards. Any problem is a
    /// <see cref="BadInputException"/> naming the file.
    /// </summary>
    public static SafetensorsCheckpoint Open(string folder, string baseName = DiffusersBaseName)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentException.ThrowIfNullOrEmpty(baseName);
        string indexPath = Path.Combine(folder, IndexFileName(baseName));
        var weightMap = File.Exists(indexPath) ? ReadWeightMap(indexPath) : null;
        var paths = weightMap is null ? ResolveFiles(folder, baseName) : ShardPaths(folder, indexPath, weightMap);
        var files = new List<SafetensorsFile>();
        try
        {
            foreach (var p in paths)
            {
                files.Add(SafetensorsFile.Open(p));
            }

            var fileOf = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (var file in files)
            {
                foreach (var e in file.Entries)
                {
                    if (!fileOf.TryAdd(e.Name, file))
                    {
                        throw new BadInputException(file.Path, $"tensor '{e.Name}' is also in {Path.GetFileName(fileOf[e.Name].Path)} (duplicate across shards)");
                    }
                }
            }

            if (weightMap is not null)
            {
                CheckIndex(indexPath, weightMap, files, fileOf);
            }

            return new SafetensorsCheckpoint(folder, weightMap is null ? null : indexPath, files, fileOf);
        }
        catch
        {
            foreach (var f in files)
            {
                f.Dispose();
            }

            throw;
        }
    }

    /// <summary>
    /// Matches the module's state against the checkpoint's headers (names, shapes, dtype kinds); reads no data and
    /// touches nothing, so it also works on a module built on the meta device. With <paramref name="strict"/>, any
    /// mismatch is a <see cref="BadInputException"/> naming the folder, with the problems on one line.
    /// </summary>
    /// <param name="keyMap">Maps a checkpoint tensor name to the module's state name (null: the tensor is
    /// deliberately not part of the module and is skipped without being reported); null keeps the names.</param>
    public LoadReport Check(nn.Module module, bool strict, Func<string, string?>? keyMap = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        var report = Match(module.state_dict(), keyMap);
        if (strict && !report.IsExact)
        {
            throw new BadInputException(Folder, "checkpoint does not match the model: " + report.Describe());
        }

        return report;
    }

    /// <summary>
    /// Copies the checkpoint into <paramref name="module"/>'s parameters and buffers. Everything is validated first
    /// (names, shapes, dtype kinds; with <see cref="LoadOptions.Strict"/> any mismatch throws
    /// <see cref="BadInputException"/> naming the folder, and the module is left untouched). The module is then moved
    /// to <see cref="LoadOptions.Device"/>/<see cref="LoadOptions.DType"/> if set (a no-op when it was built there, see
    /// <see cref="ModuleAllocation"/>), and the tensors are copied shard by shard in file order, each converted to
    /// its parameter's dtype and device as it is read: host memory beyond the module's own state stays below one
    /// tensor's mapped pages plus, when the dtype or device differs, one staged copy of that tensor.
    /// </summary>
    public LoadReport LoadInto(nn.Module module, LoadOptions options)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var report = Check(module, options.Strict, options.KeyMap);
        if (options.Device is { } device)
        {
            module.to(device);
        }

        if (options.DType is { } dtype)
        {
            module.to(dtype);
        }

        // Fetched after the move: module.to replaces the parameter tensors.
        var targets = module.state_dict();
        var load = report.Loaded.ToHashSet(StringComparer.Ordinal);
        using var noGrad = no_grad();
        foreach (var file in Files)
        {
            try
            {
                foreach (var e in file.Entries.OrderBy(e => e.Begin))
                {
                    string? name = options.KeyMap is null ? e.Name : options.KeyMap(e.Name);
                    if (name is null || !load.Contains(name))
                    {
                        continue;
                    }

                    using var scope = NewDisposeScope();
                    file.CopyTo(e.Name, targets[name]);
                }
            }
            finally
            {
                file.ReleaseMapping();
            }
        }

        return report;
    }

    /// <summary>
    /// Writes <paramref name="tensors"/> as a checkpoint named <paramref name="baseName"/> in <paramref name="folder"/>:
    /// one file if they fit in <paramref name="maxShardBytes"/>, else shards plus the index. Every file is written
    /// atomically; shards before the index; files of an earlier save under the same base name that the new layout
    /// does not use are removed last.
    /// </summary>
    public static void Write(string folder, string baseName, IReadOnlyList<KeyValuePair<string, Tensor>> tensors, ScalarType? floatDType,
        long maxShardBytes, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentException.ThrowIfNullOrEmpty(baseName);
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        Directory.CreateDirectory(folder);
        var shards = new List<List<KeyValuePair<string, Tensor>>> { new() };
        long current = 0, total = 0;
        foreach (var kv in tensors)
        {
            long bytes = SafetensorsWriter.StoredBytes(kv.Value, floatDType);
            if (shards[^1].Count > 0 && current + bytes > maxShardBytes)
            {
                shards.Add([]);
                current = 0;
            }

            shards[^1].Add(kv);
            current += bytes;
            total += bytes;
        }

        var written = new HashSet<string>(StringComparer.Ordinal);
        if (shards.Count == 1)
        {
            SafetensorsWriter.WriteFile(Path.Combine(folder, SingleFileName(baseName)), shards[0], floatDType, metadata);
            written.Add(SingleFileName(baseName));
        }
        else
        {
            var weightMap = new JsonObject();
            for (int i = 0; i < shards.Count; i++)
            {
                string name = ShardFileName(baseName, i + 1, shards.Count);
                SafetensorsWriter.WriteFile(Path.Combine(folder, name), shards[i], floatDType, metadata);
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
            AtomicFile.WriteAllText(Path.Combine(folder, IndexFileName(baseName)), index.ToJsonString(Indented));
            written.Add(IndexFileName(baseName));
        }

        var stale = Directory.EnumerateFiles(folder, $"{baseName}-*-of-*.safetensors")
            .Append(Path.Combine(folder, SingleFileName(baseName)))
            .Append(Path.Combine(folder, IndexFileName(baseName)));
        foreach (var path in stale)
        {
            if (!written.Contains(Path.GetFileName(path)) && File.Exists(path))
            {
                File.Delete(path);
            }
        }
    }

    public void Dispose()
    {
        foreach (var f in Files)
        {
            f.Dispose();
        }
    }

    private LoadReport Match(Dictionary<string, Tensor> targets, Func<string, string?>? keyMap)
    {
        var matched = new HashSet<string>(StringComparer.Ordinal);
        var loaded = new List<string>();
        var unexpected = new List<string>();
        var mismatched = new List<ShapeMismatch>();
        var incompatible = new List<TypeMismatch>();
        foreach (var file in Files)
        {
            foreach (var e in file.Entries)
            {
                string? name = keyMap is null ? e.Name : keyMap(e.Name);
                if (name is null)
                {
                    continue;
                }

                if (!targets.TryGetValue(name, out var t))
                {
                    unexpected.Add(e.Name);
                }
                else if (!matched.Add(name))
                {
                    throw new BadInputException(file.Path, $"'{e.Name}' is a second copy of '{name}' (two key layouts in one checkpoint)");
                }
                else if (!t.shape.SequenceEqual(e.Shape))
                {
                    mismatched.Add(new ShapeMismatch(e.Name, t.shape, e.Shape, file.Path));
                }
                else if (e.ScalarType is not { } fileType || !Convertible(fileType, t.dtype))
                {
                    string fileName = e.ScalarType is null ? e.DType + " (unsupported)" : e.DType;
                    incompatible.Add(new TypeMismatch(e.Name, t.dtype.ToString(), fileName, file.Path));
                }
                else
                {
                    loaded.Add(name);
                }
            }
        }

        return new LoadReport
        {
            Loaded = loaded,
            Missing = targets.Keys.Where(k => !matched.Contains(k)).ToList(),
            Unexpected = unexpected,
            Mismatched = mismatched,
            IncompatibleTypes = incompatible,
            Files = Files.Select(f => f.Path).ToList(),
        };
    }

    // Floating-point values go into floating-point state, integers into integers, bools into bools: anything else
    // would silently truncate or reinterpret.
    private static bool Convertible(ScalarType file, ScalarType module) =>
        SafetensorsDType.IsFloating(file) == SafetensorsDType.IsFloating(module)
        && (file == ScalarType.Bool) == (module == ScalarType.Bool);

    private static List<string> ShardPaths(string folder, string indexPath, Dictionary<string, string> weightMap)
    {
        var paths = weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)
            .Select(f => Path.Combine(folder, f)).ToList();
        foreach (var p in paths)
        {
            if (!File.Exists(p))
            {
                throw new BadInputException(p, $"shard listed in {Path.GetFileName(indexPath)} is missing");
            }
        }

        return paths;
    }

    private static void CheckIndex(string indexPath, Dictionary<string, string> weightMap, List<SafetensorsFile> files,
        Dictionary<string, SafetensorsFile> fileOf)
    {
        string index = Path.GetFileName(indexPath);
        var byName = files.ToDictionary(f => Path.GetFileName(f.Path), StringComparer.Ordinal);
        foreach (var (tensor, shard) in weightMap)
        {
            if (!byName[shard].Contains(tensor))
            {
                string actual = fileOf.TryGetValue(tensor, out var other) ? $" (it is in {Path.GetFileName(other.Path)})" : "";
                throw new BadInputException(byName[shard].Path, $"{index} maps tensor '{tensor}' to this shard, but the shard does not contain it{actual}");
            }
        }

        foreach (var file in files)
        {
            foreach (var e in file.Entries)
            {
                if (!weightMap.ContainsKey(e.Name))
                {
                    throw new BadInputException(file.Path, $"tensor '{e.Name}' is not listed in {index}");
                }
            }
        }
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
                if (file.Length == 0 || file != Path.GetFileName(file) || file is "." or "..")
                {
                    throw new BadInputException(indexPath, $"weight_map entry '{p.Name}' names a bad file '{file}'");
                }

                if (!map.TryAdd(p.Name, file))
                {
                    throw new BadInputException(indexPath, $"weight_map lists tensor '{p.Name}' twice");
                }
            }

            return map;
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new BadInputException(indexPath, "malformed index: " + ex.Message, ex);
        }
    }
}
