using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using StableLayers.Core;
using StableLayers.Distributed;
using StableLayers.Judges;
using StableLayers.Model;
using StableLayers.Model.Schedulers;
using Tomlyn;
using Tomlyn.Model;

namespace StableLayers.Training.Grpo;

/// <summary>
/// A Flow-GRPO run's settings (configs/tiny-grpo.toml). Keys are snake_case as in the file; unknown keys
/// are errors so that a typo never silently falls back to a default.
/// </summary>
public sealed record GrpoConfig
{
    [JsonPropertyName("seed")] public long Seed { get; init; }

    /// <summary>Optimizer steps of the run (each: images_per_step groups of group_size candidates).</summary>
    [JsonPropertyName("steps")] public int Steps { get; init; } = 60;

    [JsonPropertyName("threads")] public int Threads { get; init; } = 2;

    /// <summary>"auto" (CUDA when present, else the CPU), "cpu", "cuda" or "cuda:N"; `train --device` overrides it.</summary>
    [JsonPropertyName("device")] public string Device { get; init; } = "auto";

    [JsonPropertyName("model")] public ModelSection Model { get; init; } = new();
    [JsonPropertyName("data")] public DataSection Data { get; init; } = new();
    [JsonPropertyName("sampling")] public SamplingSection Sampling { get; init; } = new();
    [JsonPropertyName("lora")] public LoraSection Lora { get; init; } = new();
    [JsonPropertyName("optim")] public OptimSection Optim { get; init; } = new();
    [JsonPropertyName("grpo")] public GrpoSection Grpo { get; init; } = new();
    [JsonPropertyName("judge")] public JudgeSettings Judge { get; init; } = new();
    [JsonPropertyName("run")] public RunSection Run { get; init; } = new();
    [JsonPropertyName("distributed")] public DistributedSection Distributed { get; init; } = new();

    public sealed record ModelSection
    {
        /// <summary>The base model folder; relative paths are resolved against the config file's folder, then the working directory.</summary>
        [JsonPropertyName("base")] public string Base { get; init; } = "models/tiny-base";

        /// <summary>
        /// The frozen base weights' dtype: "float32", "bfloat16" or "float16" (not on the CPU). The LoRA adapters, their
        /// AdamW state, latents, log-probabilities and the loss stay float32 whatever this is.
        /// </summary>
        [JsonPropertyName("dtype")] public string DType { get; init; } = "float32";
    }

    public sealed record DataSection
    {
        /// <summary>"synth" or a folder of unlabeled images (PNG/JPEG/WebP, any size).</summary>
        [JsonPropertyName("source")] public string Source { get; init; } = SynthSource;

        /// <summary>The <see cref="Source"/> that stands for procedural designs rather than a folder.</summary>
        public const string SynthSource = "synth";

        /// <summary>The folder of training images, or null for synthetic designs.</summary>
        [JsonIgnore] public string? ImageFolder => Source == SynthSource ? null : Source;
        [JsonPropertyName("synth_seed")] public int SynthSeed { get; init; } = 2000;

        /// <summary>Held-out images for periodic evaluation: synthetic designs with ground truth (seed, count).</summary>
        [JsonPropertyName("heldout_seed")] public int HeldoutSeed { get; init; } = 1000;
        [JsonPropertyName("heldout_count")] public int HeldoutCount { get; init; } = 16;
    }

    public sealed record SamplingSection
    {
        [JsonPropertyName("group_size")] public int GroupSize { get; init; } = 8;
        [JsonPropertyName("images_per_step")] public int ImagesPerStep { get; init; } = 2;
        [JsonPropertyName("steps")] public int Steps { get; init; } = 10;
        [JsonPropertyName("noise_level")] public double NoiseLevel { get; init; } = 1.2;
        [JsonPropertyName("sde_window")] public int SdeWindow { get; init; } = 2;

        /// <summary>sde (Flow-GRPO) or cps (coefficient-preserving).</summary>
        [JsonPropertyName("sde_kind")]
        [JsonConverter(typeof(SettingEnumConverter<SdeKind>))]
        public SdeKind SdeKind { get; init; } = SdeKind.Sde;
        [JsonPropertyName("min_layers")] public int MinLayers { get; init; } = 2;
        [JsonPropertyName("max_layers")] public int MaxLayers { get; init; } = 5;
        /// <summary>The prompt for every image ("" = basic), or "{caption}" for each image's own caption (detailed; synth only).</summary>
        [JsonPropertyName("prompt")] public string Prompt { get; init; } = string.Empty;
        [JsonPropertyName("eval_steps")] public int EvalSteps { get; init; } = 20;
    }

    public sealed record LoraSection
    {
        [JsonPropertyName("rank")] public int Rank { get; init; } = 16;
        [JsonPropertyName("alpha")] public double Alpha { get; init; } = 16;

        /// <summary>Module name suffixes to adapt; empty = the 12 attention and feed-forward modules of every block.</summary>
        [JsonPropertyName("targets")] public IReadOnlyList<string> Targets { get; init; } = [];
    }

    public sealed record OptimSection
    {
        [JsonPropertyName("lr")] public double LearningRate { get; init; } = 3e-4;
        [JsonPropertyName("beta1")] public double Beta1 { get; init; } = 0.9;
        [JsonPropertyName("beta2")] public double Beta2 { get; init; } = 0.999;
        [JsonPropertyName("weight_decay")] public double WeightDecay { get; init; } = 1e-4;
        [JsonPropertyName("eps")] public double Eps { get; init; } = 1e-8;
        [JsonPropertyName("grad_clip")] public double GradClip { get; init; } = 1.0;
    }

    public sealed record GrpoSection
    {
        /// <summary>sum-rescale (ours), guard-mean (GRPO-Guard) or none (plain Flow-GRPO).</summary>
        [JsonPropertyName("ratio_mode")] public RatioMode RatioMode { get; init; } = RatioMode.SumRescale;
        [JsonPropertyName("rescale_exponent")] public double RescaleExponent { get; init; } = 0.5;
        [JsonPropertyName("clip_range")] public double ClipRange { get; init; } = 5e-4;
        [JsonPropertyName("global_std")] public bool GlobalStd { get; init; }
        [JsonPropertyName("adv_clip")] public double AdvantageClip { get; init; } = 5;
        [JsonPropertyName("kl_beta")] public double KlBeta { get; init; }
        [JsonPropertyName("step_weight")] public bool StepWeight { get; init; }
        /// <summary>
        /// Optimizer steps per sampling round: the step's groups are split into this many mini-batches, each
        /// followed by an AdamW step (Flow-GRPO's train batches). Later mini-batches are slightly off-policy,
        /// which is what the ratio and its clipping are for; 1 keeps every ratio exactly 1.
        /// </summary>
        [JsonPropertyName("minibatches")] public int Minibatches { get; init; } = 2;
        [JsonPropertyName("max_nonfinite_in_row")] public int MaxNonFiniteInRow { get; init; } = 3;

        /// <summary>
        /// Recompute each transformer block in the update's backward pass instead of storing its activations
        /// (<see cref="StableLayers.Model.Transformer.QwenImageTransformer2DModel.GradientCheckpointing"/>): less memory, one more
        /// forward per trained step; the gradients are the same.
        /// </summary>
        [JsonPropertyName("gradient_checkpointing")] public bool GradientCheckpointing { get; init; }
    }

    public sealed record RunSection
    {
        [JsonPropertyName("checkpoint_every")] public int CheckpointEvery { get; init; } = 5;
        [JsonPropertyName("eval_every")] public int EvalEvery { get; init; } = 20;
        [JsonPropertyName("grid_every")] public int GridEvery { get; init; } = 10;
    }

    public sealed record DistributedSection
    {
        /// <summary>
        /// Which engine reduces gradients across data-parallel ranks: auto (MPI when launched by mpirun, NCCL for CUDA
        /// tensors, else one process), none, mpi or nccl; `train --distributed` overrides it. Every rank sets
        /// <c>threads</c> torch threads: on a CPU box run one rank per core with threads = 1.
        /// </summary>
        [JsonPropertyName("backend")]
        [JsonConverter(typeof(SettingEnumConverter<DistributedBackend>))]
        public DistributedBackend Backend { get; init; } = DistributedBackend.Auto;
    }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        WriteIndented = true,
    };

    /// <summary>Reads a .toml (or .json) config; any problem is a <see cref="BadInputException"/> naming the file.</summary>
    public static GrpoConfig Load(string path)
    {
        string text = InputFile.ReadAllText(path);
        GrpoConfig config;
        try
        {
            JsonNode? node = path.EndsWith(".json", StringComparison.OrdinalIgnoreCase)
                ? JsonNode.Parse(text)
                : ToJson(TomlSerializer.Deserialize<TomlTable>(text) ?? new TomlTable());
            config = node.Deserialize<GrpoConfig>(JsonOptions) ?? new GrpoConfig();
        }
        catch (TomlException e)
        {
            throw new BadInputException(path, $"invalid TOML: {FirstLine(e.Message)}");
        }
        catch (SettingValueException e)
        {
            throw new BadInputException(path, $"{e.Key} {e.Message}");
        }
        catch (JsonException e)
        {
            throw new BadInputException(path, $"invalid config: {FirstLine(e.Message)}");
        }

        string? problem = config.Problem();
        return problem is null ? config : throw new BadInputException(path, problem);
    }

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>The first thing wrong with the settings, or null.</summary>
    public string? Problem()
    {
        static bool Positive(double v) => v > 0 && double.IsFinite(v);
        return this switch
        {
            { Steps: < 1 } => "steps must be at least 1",
            { Threads: < 1 } => "threads must be at least 1",
            _ when !ComputeDevice.IsWellFormed(Device) => $"device '{Device}' is not one of auto, cpu, cuda, cuda:N",
            _ when Model.DType.Trim().ToLowerInvariant() is not ("float32" or "fp32" or "bfloat16" or "bf16" or "float16" or "fp16") => $"model.dtype '{Model.DType}' is not one of float32, bfloat16, float16",
            { Sampling.GroupSize: < 2 } => "sampling.group_size must be at least 2 (advantages compare candidates)",
            { Sampling.ImagesPerStep: < 1 } => "sampling.images_per_step must be at least 1",
            { Sampling.Steps: < 2 } => "sampling.steps must be at least 2",
            { Sampling.SdeWindow: < 1 } => "sampling.sde_window must be at least 1",
            { Sampling.MinLayers: < 1 } => "sampling.min_layers must be at least 1",
            _ when Sampling.MaxLayers < Sampling.MinLayers => "sampling.max_layers must be >= sampling.min_layers",
            _ when Sampling.SdeWindow > Math.Max(1, Sampling.Steps / 2) => "sampling.sde_window must fit in the first half of sampling.steps",
            _ when !(Sampling.NoiseLevel >= 0) => "sampling.noise_level must be >= 0",
            { Lora.Rank: < 1 } => "lora.rank must be at least 1",
            _ when !Positive(Lora.Alpha) => "lora.alpha must be positive",
            _ when !Positive(Optim.LearningRate) => "optim.lr must be positive",
            _ when !Positive(Grpo.ClipRange) => "grpo.clip_range must be positive",
            _ when Judge.Problem() is { } judgeProblem => judgeProblem,
            { Grpo.Minibatches: < 1 } => "grpo.minibatches must be at least 1",
            _ when Grpo.Minibatches > Sampling.ImagesPerStep => "grpo.minibatches cannot exceed sampling.images_per_step (a mini-batch holds whole groups)",
            { Run.CheckpointEvery: < 1 } => "run.checkpoint_every must be at least 1",
            _ => null,
        };
    }

    private static string FirstLine(string s) => s.Split('\n')[0].Trim();

    private static JsonNode? ToJson(object? value) => value switch
    {
        null => null,
        TomlTable t => new JsonObject(t.Select(kv => KeyValuePair.Create(kv.Key, ToJson(kv.Value)))),
        TomlTableArray a => new JsonArray(a.Select(x => ToJson(x)).ToArray()),
        TomlArray a => new JsonArray(a.Select(ToJson).ToArray()),
        string s => JsonValue.Create(s),
        bool b => JsonValue.Create(b),
        long l => JsonValue.Create(l),
        double d => JsonValue.Create(d),
        _ => JsonValue.Create(Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture)),
    };
}
