using System.Text.Json;
using System.Text.Json.Serialization;
using StableLayers.Core;
using StableLayers.Model;

namespace StableLayers.Training.Pretraining;

/// <summary>Where a pretraining run stands: which stage, how many steps are done, and the loss history.</summary>
public sealed record PretrainState
{
    [JsonPropertyName("stage")] public string Stage { get; init; } = PretrainStages.Vae;

    /// <summary>Steps completed in <see cref="Stage"/>.</summary>
    [JsonPropertyName("step")] public int Step { get; init; }

    [JsonPropertyName("vae_losses")] public List<double[]> VaeLosses { get; init; } = [];

    [JsonPropertyName("transformer_losses")] public List<double[]> TransformerLosses { get; init; } = [];

    [JsonPropertyName("decoder_losses")] public List<double[]> DecoderLosses { get; init; } = [];

    [JsonPropertyName("seconds")] public double Seconds { get; init; }
}

public static class PretrainStages
{
    public const string Vae = "vae";
    public const string Transformer = "transformer";
    public const string Decoder = "decoder";
    public const string Done = "done";
}

/// <summary>
/// The run folder's checkpoint: the model in its normal folder layout, the optimizer state and the run state,
/// replaced atomically (written beside, then swapped by rename) so an interruption never leaves a half checkpoint.
/// </summary>
public static class PretrainCheckpoint
{
    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = false };

    public static string PathIn(string runDir) => Path.Combine(runDir, "checkpoint");

    public static bool Exists(string runDir) => File.Exists(Path.Combine(PathIn(runDir), "state.json"));

    public static void Save(string runDir, LayeredModel model, TorchSharp.Modules.AdamW optimizer, PretrainState state)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        string final = PathIn(runDir);
        string tmp = final + ".tmp";
        string old = final + ".old";
        if (Directory.Exists(tmp))
        {
            Directory.Delete(tmp, recursive: true);
        }

        model.Save(Path.Combine(tmp, "model"));
        using (var fs = File.Create(Path.Combine(tmp, "optimizer.bin")))
        using (var writer = new BinaryWriter(fs))
        {
            optimizer.save_state_dict(writer);
        }

        AtomicFile.WriteAllText(Path.Combine(tmp, "state.json"), JsonSerializer.Serialize(state, JsonOptions));
        if (Directory.Exists(old))
        {
            Directory.Delete(old, recursive: true);
        }

        if (Directory.Exists(final))
        {
            Directory.Move(final, old);
        }

        Directory.Move(tmp, final);
        if (Directory.Exists(old))
        {
            Directory.Delete(old, recursive: true);
        }
    }

    public static PretrainState LoadState(string runDir)
    {
        string path = Path.Combine(PathIn(runDir), "state.json");
        try
        {
            return JsonSerializer.Deserialize<PretrainState>(File.ReadAllText(path), JsonOptions) ?? throw new BadInputException(path, "empty state");
        }
        catch (JsonException e)
        {
            throw new BadInputException(path, $"corrupt checkpoint state ({e.Message.Split('\n')[0]})");
        }
    }

    public static void LoadOptimizer(string runDir, TorchSharp.Modules.AdamW optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        string path = Path.Combine(PathIn(runDir), "optimizer.bin");
        if (!File.Exists(path))
        {
            return;
        }

        using var fs = File.OpenRead(path);
        using var reader = new BinaryReader(fs);
        optimizer.load_state_dict(reader);
    }
}
