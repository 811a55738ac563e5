using System.Text.Json;
using StableLayers.Core;

namespace StableLayers.Training.Checkpoints;

/// <summary>
/// A checkpoint is a folder replaced as a whole: written to <c>name.tmp</c>, then swapped in, so a crash at
/// any point leaves either the previous checkpoint or the new one (a crash mid-swap leaves <c>name.old</c>,
/// which <see cref="Recover"/> puts back).
/// </summary>
public static class CheckpointFolder
{
    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };

    public static void Write(string finalDir, Action<string> writeInto)
    {
        ArgumentNullException.ThrowIfNull(writeInto);
        string tmp = finalDir + ".tmp";
        string old = finalDir + ".old";
        DeleteIfExists(tmp);
        Directory.CreateDirectory(tmp);
        writeInto(tmp);
        DeleteIfExists(old);
        if (Directory.Exists(finalDir))
        {
            Directory.Move(finalDir, old);
        }

        Directory.Move(tmp, finalDir);
        DeleteIfExists(old);
    }

    /// <summary>Restores a checkpoint left as <c>name.old</c> by a crash between the two renames.</summary>
    public static void Recover(string finalDir)
    {
        string old = finalDir + ".old";
        if (!Directory.Exists(finalDir) && Directory.Exists(old))
        {
            Directory.Move(old, finalDir);
        }
    }

    public static void SaveOptimizer(string path, TorchSharp.Modules.AdamW optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        using var fs = File.Create(path);
        using var writer = new BinaryWriter(fs);
        optimizer.save_state_dict(writer);
    }

    /// <summary>Loads optimizer state if the file exists (a checkpoint written before the first step has none).</summary>
    public static void LoadOptimizer(string path, TorchSharp.Modules.AdamW optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        if (!File.Exists(path))
        {
            return;
        }

        using var fs = InputFile.OpenRead(path);
        using var reader = new BinaryReader(fs);
        optimizer.load_state_dict(reader);
    }

    public static void WriteJson<T>(string path, T value, JsonSerializerOptions? options = null) =>
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(value, options ?? JsonOptions));

    public static T ReadJson<T>(string path, JsonSerializerOptions? options = null)
    {
        string text = InputFile.ReadAllText(path);
        try
        {
            return JsonSerializer.Deserialize<T>(text, options ?? JsonOptions) ?? throw new BadInputException(path, "empty checkpoint state");
        }
        catch (JsonException e)
        {
            throw new BadInputException(path, $"corrupt checkpoint state ({e.Message.Split('\n')[0]})");
        }
    }

    private static void DeleteIfExists(string dir)
    {
        if (Directory.Exists(dir))
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
