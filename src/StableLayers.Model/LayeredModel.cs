using System.Text.Json;
using StableLayers.Core;
using StableLayers.Model.Lora;
using StableLayers.Model.Text;
using StableLayers.Model.Transformer;
using StableLayers.Model.Vae;
using StableLayers.Model.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model;

/// <summary>
/// The decomposition model as one unit: transformer, RGBA VAE and prompt encoder, stored as a
/// diffusers-style folder (model_index.json, transformer/, vae/, text_encoder/).
/// </summary>
public sealed class LayeredModel : IDisposable
{
    public const string IndexFile = "model_index.json";

    public LayeredModel(LayeredModelConfig config, QwenImageTransformer2DModel transformer, AutoencoderKLQwenImage vae, IPromptEncoder prompts)
    {
        Config = config;
        Transformer = transformer;
        Vae = vae;
        Prompts = prompts;
    }

    public LayeredModelConfig Config { get; }

    public QwenImageTransformer2DModel Transformer { get; }

    public AutoencoderKLQwenImage Vae { get; private set; }

    public IPromptEncoder Prompts { get; }

    /// <summary>Where the model's weights live; every tensor a step creates goes there too.</summary>
    public Device Device => Transformer.parameters().First().device;

    /// <summary>Moves the transformer, VAE and text encoder to <paramref name="device"/> (in place); returns this model.</summary>
    public LayeredModel To(ComputeDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        var target = device.Torch;
        Transformer.to(target);
        Vae.to(target);
        (Prompts as nn.Module)?.to(target);
        (Prompts as QwenPromptEncoder)?.MoveEncoder(target);
        return this;
    }

    /// <summary>A freshly initialised model (tiny preset: with a text encoder over <paramref name="tokenizer"/>).</summary>
    public static LayeredModel Create(LayeredModelConfig config, WordTokenizer? tokenizer, long seed)
    {
        ArgumentNullException.ThrowIfNull(config);
        manual_seed(seed);
        var transformer = new QwenImageTransformer2DModel(config.Transformer);
        // No RGBA initialisation: it exists to convert a pretrained RGB VAE, and from scratch it makes the tiny VAE
        // collapse to grey (measured in models/tiny-base/README.md).
        var vae = new AutoencoderKLQwenImage(config.Vae);
        IPromptEncoder prompts = config.TextEncoder is { } tc
            ? new TinyTextEncoder(tc, tokenizer ?? throw new ArgumentNullException(nameof(tokenizer)))
            : throw new NotSupportedException("the full model's prompt embeddings come from a precomputed file; use Load");
        return new LayeredModel(config, transformer, vae, prompts);
    }

    /// <summary>Replaces the VAE's latent statistics (measured after VAE training) keeping its weights.</summary>
    public void SetLatentStatistics(double[] mean, double[] std)
    {
        var vae = new AutoencoderKLQwenImage(Vae.Config with { LatentsMean = mean.Select(v => (float)v).ToArray(), LatentsStd = std.Select(v => (float)v).ToArray() });
        vae.to(Device);
        vae.load_state_dict(Vae.state_dict());
        Vae.Dispose();
        Vae = vae;
    }

    /// <summary>
    /// Loads a LoRA file (PEFT/diffusers key format, see <see cref="LoraAdapters.Load"/>) and merges it into the
    /// transformer's weights for inference; the transformer's parameters are left frozen. Returns the adapter config.
    /// </summary>
    public LoraConfig MergeLora(string path)
    {
        using var adapters = LoraAdapters.Load(Transformer, path);
        var config = adapters.Config;
        adapters.MergeAndUnload();
        return config;
    }

    public void Save(string dir)
    {
        Directory.CreateDirectory(dir);
        DiffusersCheckpoint.Save(Transformer, Path.Combine(dir, "transformer"), Config.Transformer, ScalarType.Float32);
        DiffusersCheckpoint.Save(Vae, Path.Combine(dir, "vae"), Vae.Config, ScalarType.Float32);
        if (Prompts is TinyTextEncoder text)
        {
            var textDir = Path.Combine(dir, "text_encoder");
            DiffusersCheckpoint.Save(text, textDir, text.Config, ScalarType.Float32);
            text.Tokenizer.Save(Path.Combine(textDir, "vocab.json"));
        }

        var index = Config with { Vae = Vae.Config };
        AtomicFile.WriteAllText(Path.Combine(dir, IndexFile), index.ToJson());
    }

    /// <summary>
    /// Loads a model folder written by <see cref="Save"/> (or in the same diffusers layout, sharded or not).
    /// Every checkpoint is opened and checked against its module, built on the meta device (no memory), before
    /// anything is allocated; then each module is built directly on <paramref name="device"/> in
    /// <paramref name="dtype"/> (<see cref="ModuleAllocation"/>) and its checkpoint streamed in shard by shard. Bad
    /// or mismatched files throw <see cref="BadInputException"/> naming the file or folder; nothing is returned
    /// half-loaded.
    /// </summary>
    /// <param name="device">Where the weights live; null: the CPU.</param>
    /// <param name="dtype">The floating-point dtype of every module's weights (the VAE's and text encoder's too, as
    /// diffusers' pipeline.to(dtype) does); null: as the modules are built (float32).</param>
    public static LayeredModel Load(string dir, ComputeDevice? device = null, ScalarType? dtype = null)
    {
        string indexPath = Path.Combine(dir, IndexFile);
        if (!File.Exists(indexPath))
        {
            throw new BadInputException(dir, $"not a model folder (no {IndexFile})");
        }

        if (LayeredModelConfig.IsDiffusersIndex(indexPath))
        {
            return LoadDiffusersFolder(dir, device, dtype);
        }

        var config = LayeredModelConfig.Load(indexPath);
        if (config.TextEncoder is not { } textConfig)
        {
            throw new BadInputException(dir, "this model needs precomputed prompt embeddings (full Qwen2.5-VL); not supported yet");
        }

        var textDir = Path.Combine(dir, "text_encoder");
        var tokenizer = WordTokenizer.Load(Path.Combine(textDir, "vocab.json"));
        Func<QwenImageTransformer2DModel> newTransformer = () => new QwenImageTransformer2DModel(config.Transformer);
        Func<AutoencoderKLQwenImage> newVae = () => new AutoencoderKLQwenImage(config.Vae);
        Func<TinyTextEncoder> newText = () => new TinyTextEncoder(textConfig, tokenizer);

        using var transformerFiles = SafetensorsCheckpoint.Open(Path.Combine(dir, "transformer"));
        using var vaeFiles = SafetensorsCheckpoint.Open(Path.Combine(dir, "vae"));
        using var textFiles = SafetensorsCheckpoint.Open(textDir);
        CheckOnMeta(transformerFiles, newTransformer);
        CheckOnMeta(vaeFiles, newVae);
        CheckOnMeta(textFiles, newText);

        var target = device?.Torch;
        var options = new LoadOptions { Device = target, DType = dtype };
        QwenImageTransformer2DModel? transformer = null;
        AutoencoderKLQwenImage? vae = null;
        TinyTextEncoder? text = null;
        try
        {
            transformer = ModuleAllocation.Create(newTransformer, target, dtype);
            transformerFiles.LoadInto(transformer, options);
            vae = ModuleAllocation.Create(newVae, target, dtype);
            vaeFiles.LoadInto(vae, options);
            text = ModuleAllocation.Create(newText, target, dtype);
            textFiles.LoadInto(text, options);
            transformer.eval();
            vae.eval();
            text.eval();
            return new LayeredModel(config, transformer, vae, text);
        }
        catch
        {
            transformer?.Dispose();
            vae?.Dispose();
            text?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The released folder layout (QwenImageLayeredPipeline): transformer/ and vae/ with their diffusers configs,
    /// text_encoder/ holding Qwen2.5-VL (config.json model_type qwen2_5_vl, transformers checkpoint) and tokenizer/.
    /// Prompts go through <see cref="QwenPromptEncoder"/>.
    /// </summary>
    private static LayeredModel LoadDiffusersFolder(string dir, ComputeDevice? device, ScalarType? dtype)
    {
        var config = LayeredModelConfig.LoadDiffusersFolder(dir);
        string textDir = Path.Combine(dir, "text_encoder");
        string textConfigPath = Path.Combine(textDir, "config.json");
        string modelType = ReadModelType(textConfigPath);
        if (modelType != "qwen2_5_vl")
        {
            throw new BadInputException(textConfigPath, $"text encoder model_type '{modelType}' is not supported (expected qwen2_5_vl)");
        }

        var textConfig = Qwen25VlTextConfig.Load(textConfigPath);
        if (textConfig.HiddenSize != config.Transformer.JointAttentionDim)
        {
            throw new BadInputException(textConfigPath, $"text encoder hidden_size {textConfig.HiddenSize} must equal transformer joint_attention_dim {config.Transformer.JointAttentionDim}");
        }

        // The tokenizer and every header first: bad files fail before anything large is allocated.
        var tokenizer = QwenTokenizer.Load(Path.Combine(dir, "tokenizer"));
        QwenPromptEncoder.CheckTokenizer(tokenizer);
        Func<QwenImageTransformer2DModel> newTransformer = () => new QwenImageTransformer2DModel(config.Transformer);
        Func<AutoencoderKLQwenImage> newVae = () => new AutoencoderKLQwenImage(config.Vae);
        using var transformerFiles = SafetensorsCheckpoint.Open(Path.Combine(dir, "transformer"));
        using var vaeFiles = SafetensorsCheckpoint.Open(Path.Combine(dir, "vae"));
        using (var textFiles = SafetensorsCheckpoint.Open(textDir, SafetensorsCheckpoint.TransformersBaseName))
        {
            using var meta = ModuleAllocation.Create(() => new Qwen25VlTextEncoder(textConfig, META), META);
            textFiles.Check(meta, strict: true, Qwen25VlTextEncoderLoader.MapKey);
        }

        CheckOnMeta(transformerFiles, newTransformer);
        CheckOnMeta(vaeFiles, newVae);

        var target = device?.Torch;
        var options = new LoadOptions { Device = target, DType = dtype };
        QwenImageTransformer2DModel? transformer = null;
        AutoencoderKLQwenImage? vae = null;
        Qwen25VlTextEncoder? text = null;
        try
        {
            transformer = ModuleAllocation.Create(newTransformer, target, dtype);
            transformerFiles.LoadInto(transformer, options);
            vae = ModuleAllocation.Create(newVae, target, dtype);
            vaeFiles.LoadInto(vae, options);
            (text, _) = Qwen25VlTextEncoderLoader.Load(textDir, target ?? CPU, dtype ?? ScalarType.Float32);
            transformer.eval();
            vae.eval();
            text.eval();
            return new LayeredModel(config, transformer, vae, new QwenPromptEncoder(tokenizer, text));
        }
        catch
        {
            transformer?.Dispose();
            vae?.Dispose();
            text?.Dispose();
            throw;
        }
    }

    private static string ReadModelType(string configPath)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(configPath));
            return doc.RootElement.TryGetProperty("model_type", out var t) ? t.GetString() ?? "" : "";
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new BadInputException(configPath, "no text encoder config (the released layout has text_encoder/config.json)");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new BadInputException(configPath, $"malformed text encoder config ({e.Message.Split('\n')[0]})");
        }
    }

    private static void CheckOnMeta(SafetensorsCheckpoint checkpoint, Func<nn.Module> create)
    {
        using var meta = ModuleAllocation.Create(create, META);
        checkpoint.Check(meta, strict: true);
    }

    public void Dispose()
    {
        Transformer.Dispose();
        Vae.Dispose();
        (Prompts as IDisposable)?.Dispose();
    }
}
