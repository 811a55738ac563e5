using System.Text.Json;
using System.Text.Json.Serialization;
using StableLayers.Core;
using StableLayers.Model.Text;
using StableLayers.Model.Transformer;
using StableLayers.Model.Vae;

namespace StableLayers.Model;

/// <summary>
/// A model preset as a file users can copy (configs/tiny.json, configs/qwen-image-layered.json): the
/// architecture of every component plus the resolution it works at.
/// </summary>
public sealed record LayeredModelConfig
{
    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    [JsonPropertyName("name")]
    public string Name { get; init; } = "custom";

    /// <summary>Resolution bucket: inputs are resized to about resolution^2 pixels at their aspect ratio.</summary>
    [JsonPropertyName("resolution")]
    public int Resolution { get; init; } = 640;

    [JsonPropertyName("transformer")]
    public TransformerConfig Transformer { get; init; } = TransformerConfig.Full;

    [JsonPropertyName("vae")]
    public VaeConfig Vae { get; init; } = VaeConfig.Full;

    /// <summary>The tiny learned text encoder; null for the full model (precomputed Qwen2.5-VL embeddings).</summary>
    [JsonPropertyName("text_encoder")]
    public TinyTextEncoderConfig? TextEncoder { get; init; }

    /// <summary>Pretraining settings of the tiny preset (ignored for the released model).</summary>
    [JsonPropertyName("pretrain")]
    public PretrainSettings? Pretrain { get; init; }

    /// <summary>Pixels per transformer token side: VAE compression times the 2x2 patch.</summary>
    [JsonIgnore]
    public int PixelsPerToken => Vae.SpatialCompression * Transformer.PatchSize;

    public static LayeredModelConfig Load(string path)
    {
        try
        {
            var config = JsonSerializer.Deserialize<LayeredModelConfig>(File.ReadAllText(path), JsonOptions)
                ?? throw new BadInputException(path, "empty model config");
            config.Validate(path);
            return config;
        }
        catch (FileNotFoundException)
        {
            throw new BadInputException(path, "model config not found");
        }
        catch (JsonException e)
        {
            throw new BadInputException(path, $"malformed model config ({e.Message.Split('\n')[0]})");
        }
    }

    /// <summary>
    /// True if <paramref name="indexPath"/> is a diffusers pipeline index (the released model's model_index.json:
    /// "_class_name" plus components as [library, class] pairs) rather than one of our presets.
    /// </summary>
    public static bool IsDiffusersIndex(string indexPath)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(indexPath), new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            return doc.RootElement.ValueKind == JsonValueKind.Object
                && (doc.RootElement.TryGetProperty("_class_name", out _)
                    || (doc.RootElement.TryGetProperty("transformer", out var t) && t.ValueKind == JsonValueKind.Array));
        }
        catch (JsonException e)
        {
            throw new BadInputException(indexPath, $"malformed model index ({e.Message.Split('\n')[0]})");
        }
    }

    /// <summary>
    /// The config of a diffusers pipeline folder (QwenImageLayeredPipeline: model_index.json lists the components;
    /// transformer/config.json and vae/config.json hold their configs). The text encoder is not part of it: it is
    /// the Qwen2.5-VL in text_encoder/ (see <see cref="LayeredModel.Load"/>). Resolution: the pipeline's default
    /// bucket, 640.
    /// </summary>
    public static LayeredModelConfig LoadDiffusersFolder(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        var config = new LayeredModelConfig
        {
            Name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir))),
            Transformer = ReadComponent<TransformerConfig>(Path.Combine(dir, "transformer", "config.json")),
            Vae = ReadComponent<VaeConfig>(Path.Combine(dir, "vae", "config.json")),
        };
        config.Validate(Path.Combine(dir, "model_index.json"));
        return config;
    }

    private static T ReadComponent<T>(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<T>(File.ReadAllText(path), JsonOptions) ?? throw new BadInputException(path, "empty component config");
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new BadInputException(path, "component config not found");
        }
        catch (JsonException e)
        {
            throw new BadInputException(path, $"malformed component config ({e.Message.Split('\n')[0]})");
        }
    }

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    public void Validate(string source)
    {
        try
        {
            Transformer.Validate();
            Vae.Validate();
        }
        catch (ArgumentException e)
        {
            throw new BadInputException(source, e.Message);
        }

        if (Transformer.InChannels != Vae.ZDim * Transformer.PatchSize * Transformer.PatchSize)
        {
            throw new BadInputException(source, $"transformer in_channels {Transformer.InChannels} must be vae z_dim {Vae.ZDim} x patch^2");
        }

        if (TextEncoder is not null && TextEncoder.HiddenSize != Transformer.JointAttentionDim)
        {
            throw new BadInputException(source, $"text_encoder hidden_size {TextEncoder.HiddenSize} must equal transformer joint_attention_dim {Transformer.JointAttentionDim}");
        }

        if (Pretrain is { } pre && (pre.EmaDecay is < 0 or >= 1 || pre.HighNoiseShare is < 0 or > 1 || pre.HighNoiseMin is < 0 or >= 1))
        {
            throw new BadInputException(source, $"pretrain ema_decay {pre.EmaDecay} must be in [0, 1), high_noise_share {pre.HighNoiseShare} in [0, 1], high_noise_min {pre.HighNoiseMin} in [0, 1)");
        }

        if (Resolution < PixelsPerToken * 2 || Resolution % PixelsPerToken != 0)
        {
            throw new BadInputException(source, $"resolution {Resolution} must be a multiple of {PixelsPerToken} (VAE compression x patch) and at least twice that");
        }
    }
}

/// <summary>How the tiny base model is pretrained (configs/tiny.json "pretrain").</summary>
public sealed record PretrainSettings
{
    [JsonPropertyName("seed")] public int Seed { get; init; }

    [JsonPropertyName("min_layers")] public int MinLayers { get; init; } = 2;

    [JsonPropertyName("max_layers")] public int MaxLayers { get; init; } = 5;

    [JsonPropertyName("vae_steps")] public int VaeSteps { get; init; } = 1000;

    [JsonPropertyName("vae_batch_size")] public int VaeBatchSize { get; init; } = 8;

    [JsonPropertyName("vae_lr")] public double VaeLearningRate { get; init; } = 2e-3;

    [JsonPropertyName("transformer_steps")] public int TransformerSteps { get; init; } = 6000;

    [JsonPropertyName("batch_size")] public int BatchSize { get; init; } = 8;

    /// <summary>Steps of decoder-only VAE fine-tuning after the transformer (the latent space stays fixed).</summary>
    [JsonPropertyName("decoder_steps")] public int DecoderSteps { get; init; }

    [JsonPropertyName("lr")] public double LearningRate { get; init; } = 1e-3;

    [JsonPropertyName("warmup_steps")] public int WarmupSteps { get; init; } = 200;

    [JsonPropertyName("weight_decay")] public double WeightDecay { get; init; } = 0.01;

    [JsonPropertyName("grad_clip")] public double GradClip { get; init; } = 1.0;

    /// <summary>Logit-normal timestep sampling: sigma = sigmoid(N(mean, std)); a positive mean spends more steps at high noise, where sampling starts.</summary>
    [JsonPropertyName("logit_mean")] public double LogitMean { get; init; } = 0.5;

    [JsonPropertyName("logit_std")] public double LogitStd { get; init; } = 1.0;

    /// <summary>Fraction of captions replaced by the empty prompt, so classifier-free guidance has an unconditional model.</summary>
    [JsonPropertyName("caption_dropout")] public double CaptionDropout { get; init; } = 0.1;

    /// <summary>
    /// Share of each batch whose sigma is drawn uniformly from [sigma_min_high, 1] instead of the logit-normal: sampling
    /// starts from pure noise, where a logit-normal rarely trains (P(sigma > 0.9) is 4.5% at mean 0.5, std 1).
    /// </summary>
    [JsonPropertyName("high_noise_share")] public double HighNoiseShare { get; init; }

    /// <summary>Lower end of the uniform high-noise draw (see <see cref="HighNoiseShare"/>).</summary>
    [JsonPropertyName("high_noise_min")] public double HighNoiseMin { get; init; } = 0.8;

    /// <summary>Decay of an exponential moving average of the transformer and text encoder weights (0: none); the finished model is the average.</summary>
    [JsonPropertyName("ema_decay")] public double EmaDecay { get; init; }

    [JsonPropertyName("checkpoint_every")] public int CheckpointEvery { get; init; } = 250;

    [JsonPropertyName("threads")] public int Threads { get; init; } = 2;

    /// <summary>Recompute each transformer block in the backward pass instead of storing its activations (less memory, same gradients).</summary>
    [JsonPropertyName("gradient_checkpointing")] public bool GradientCheckpointing { get; init; }
}
