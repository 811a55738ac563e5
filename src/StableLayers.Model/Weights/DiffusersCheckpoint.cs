using System.Text.Json;
using StableLayers.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Weights;

/// <summary>
/// Loads and saves a module's state in a diffusers model folder: diffusion_pytorch_model.safetensors, or shards
/// diffusion_pytorch_model-0000i-of-0000n.safetensors with diffusion_pytorch_model.safetensors.index.json, plus
/// config.json (see <see cref="SafetensorsCheckpoint"/>, which does the work under the base name
/// "diffusion_pytorch_model"). Tensors are matched by their state-dict names.
/// </summary>
public static class DiffusersCheckpoint
{
    public const string BaseName = SafetensorsCheckpoint.DiffusersBaseName;
    public const string WeightsName = BaseName + ".safetensors";
    public const string IndexName = BaseName + ".safetensors.index.json";
    public const string ConfigName = "config.json";

    /// <summary>diffusers' default max_shard_size ("10GB").</summary>
    public const long DefaultMaxShardBytes = 10_000_000_000;

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>
    /// Copies the checkpoint in <paramref name="folder"/> into <paramref name="module"/>'s parameters and buffers,
    /// validated first and streamed shard by shard (see <see cref="SafetensorsCheckpoint.LoadInto"/>).
    /// </summary>
    public static LoadReport Load(nn.Module module, string folder, LoadOptions options)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentNullException.ThrowIfNull(options);
        using var checkpoint = SafetensorsCheckpoint.Open(folder, BaseName);
        return checkpoint.LoadInto(module, options);
    }

    /// <param name="dtype">If set, the module's floating-point state is converted to it; tensors are always converted to
    /// the dtype of the parameter they are copied into.</param>
    /// <param name="strict">Throw <see cref="BadInputException"/> (naming the folder and listing the problems) unless every
    /// name, shape and dtype kind matches; checked from the headers before anything is copied.</param>
    public static LoadReport Load(nn.Module module, string folder, ScalarType? dtype = null, bool strict = true) =>
        Load(module, folder, new LoadOptions { DType = dtype, Strict = strict });

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
        SafetensorsCheckpoint.Write(folder, BaseName, module.state_dict().ToList(), dtype, maxShardBytes,
            new Dictionary<string, string> { ["format"] = "pt" });
    }

    /// <summary>The safetensors files of a folder: the index's shards if an index exists, else the single file.</summary>
    public static IReadOnlyList<string> ResolveFiles(string folder) => SafetensorsCheckpoint.ResolveFiles(folder, BaseName);
}
