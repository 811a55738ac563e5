using StableLayers.Training.Checkpoints;
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

    public static bool Exists(string runDir)
    {
        CheckpointFolder.Recover(PathIn(runDir));
        return File.Exists(Path.Combine(PathIn(runDir), "state.json"));
    }

    /// <summary>The averaged weights of the transformer stage (a full model folder), while that stage runs with an average.</summary>
    public static string AveragePathIn(string runDir) => Path.Combine(PathIn(runDir), "ema");

    public static bool HasAverage(string runDir) => File.Exists(Path.Combine(AveragePathIn(runDir), LayeredModel.IndexFile));

    public static void Save(string runDir, LayeredModel model, TorchSharp.Modules.AdamW optimizer, PretrainState state, ParameterEma? average = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        CheckpointFolder.Write(PathIn(runDir), tmp =>
        {
            model.Save(Path.Combine(tmp, "model"));
            average?.WithAverage(() => model.Save(Path.Combine(tmp, "ema")));
            CheckpointFolder.SaveOptimizer(Path.Combine(tmp, "optimizer.bin"), optimizer);
            CheckpointFolder.WriteJson(Path.Combine(tmp, "state.json"), state, JsonOptions);
        });
    }

    public static PretrainState LoadState(string runDir) => CheckpointFolder.ReadJson<PretrainState>(Path.Combine(PathIn(runDir), "state.json"), JsonOptions);

    public static void LoadOptimizer(string runDir, TorchSharp.Modules.AdamW optimizer) =>
        CheckpointFolder.LoadOptimizer(Path.Combine(PathIn(runDir), "optimizer.bin"), optimizer);
}
