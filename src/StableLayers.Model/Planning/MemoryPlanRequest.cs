using StableLayers.Model.Lora;
using StableLayers.Model.Text;
using StableLayers.Model.Transformer;
using StableLayers.Model.Vae;

namespace StableLayers.Model.Planning;

/// <summary>
/// What to plan for: the architecture, the working size and the GRPO settings. Token counts follow the packing code:
/// (layers + 1) output frames plus the condition frame, each (height / 16) x (width / 16) tokens
/// (VAE 8x compression, 2x2 patches), plus <see cref="TextTokens"/> prompt tokens.
/// </summary>
public sealed record MemoryPlanRequest
{
    public TransformerConfig Transformer { get; init; } = TransformerConfig.Full;

    public VaeConfig Vae { get; init; } = VaeConfig.Full;

    /// <summary>Parameters of a text encoder held in memory beside the transformer (0: prompts are precomputed).</summary>
    public long TextEncoderParameters { get; init; }

    /// <summary>
    /// The released model's Qwen2.5-VL language model: when set, its weights are counted from this config (embeddings,
    /// decoder layers, final norm: what the loader keeps; the vision tower and lm_head are not loaded) and held as
    /// <see cref="TextEncoderPlacement"/> says, and <see cref="TextEncoderParameters"/> is ignored.
    /// </summary>
    public Qwen25VlTextConfig? QwenTextEncoder { get; init; }

    public TextEncoderPlacement TextEncoderPlacement { get; init; } = TextEncoderPlacement.Precomputed;

    /// <summary>Name printed for the text encoder line.</summary>
    public string TextEncoderName { get; init; } = "none";

    public int Width { get; init; } = 640;

    public int Height { get; init; } = 640;

    /// <summary>Layers N the model decomposes into (N + 1 output frames).</summary>
    public int Layers { get; init; } = 4;

    /// <summary>Candidates G per group (sampled and trained together).</summary>
    public int GroupSize { get; init; } = 8;

    public PlanDType DType { get; init; } = PlanDType.BF16;

    /// <summary>LoRA rank on the attention and feed-forward projections; 0 = plain inference (no adapters, no update).</summary>
    public int LoraRank { get; init; } = 16;

    /// <summary>Recompute each transformer block in the backward pass instead of keeping its activations.</summary>
    public bool Checkpointing { get; init; }

    /// <summary>Prompt tokens per row after the template prefix is dropped.</summary>
    public int TextTokens { get; init; } = 128;

    /// <summary>Stored SDE-window transitions per candidate (GRPO sampling.sde_window).</summary>
    public int WindowSteps { get; init; } = 2;

    /// <summary>Tokens the text encoder runs over per prompt: the template's dropped prefix plus the kept <see cref="TextTokens"/>.</summary>
    public int EncoderTokens => QwenPromptEncoder.DropTokens + TextTokens;

    /// <summary>Pixels per token side: VAE spatial compression x patch size.</summary>
    public int PixelsPerToken => Vae.SpatialCompression * Transformer.PatchSize;

    public int TokensPerFrame => Height / PixelsPerToken * (Width / PixelsPerToken);

    /// <summary>Image tokens per candidate: output frames 0..N and the condition frame.</summary>
    public long ImageTokens => (Layers + 2L) * TokensPerFrame;

    public LoraConfig Lora => new() { Rank = Math.Max(1, LoraRank), Alpha = Math.Max(1, LoraRank) };

    /// <summary>Throws <see cref="ArgumentException"/> naming the option for values no run can have.</summary>
    public void Validate()
    {
        Transformer.Validate();
        Vae.Validate();
        if (Width < PixelsPerToken || Height < PixelsPerToken || Width % PixelsPerToken != 0 || Height % PixelsPerToken != 0)
        {
            throw new ArgumentException($"--resolution: {Width}x{Height} must be a positive multiple of {PixelsPerToken} (VAE compression x patch) on each side");
        }

        if (Layers < 1)
        {
            throw new ArgumentException($"--layers: must be at least 1, got {Layers}");
        }

        if (GroupSize < 1)
        {
            throw new ArgumentException($"--group-size: must be at least 1, got {GroupSize}");
        }

        if (LoraRank < 0)
        {
            throw new ArgumentException($"--lora-rank: must be 0 (no adapters) or positive, got {LoraRank}");
        }

        if (TextTokens < 1)
        {
            throw new ArgumentException($"--text-tokens: must be at least 1, got {TextTokens}");
        }

        if (QwenTextEncoder is not null && TextTokens > QwenPromptEncoder.MaxSequenceLength)
        {
            throw new ArgumentException($"--text-tokens: the released pipeline keeps at most {QwenPromptEncoder.MaxSequenceLength} prompt tokens, got {TextTokens}");
        }

        if (WindowSteps < 1)
        {
            throw new ArgumentException($"--sde-window: must be at least 1, got {WindowSteps}");
        }
    }
}

/// <summary>Where the released model's text encoder is while a run trains or samples.</summary>
public enum TextEncoderPlacement
{
    /// <summary>Not loaded: prompt embeddings come from a precomputed table.</summary>
    Precomputed,

    /// <summary>On the device for the whole run (per-image prompts, e.g. captions).</summary>
    Resident,

    /// <summary>Loaded with the model, the prompt encoded once, then released (what <c>train</c> does with one prompt).</summary>
    Offloaded,
}
