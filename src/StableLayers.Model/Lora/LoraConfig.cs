using StableLayers.Model.Transformer;

namespace StableLayers.Model.Lora;

/// <summary>
/// Low-rank adapter settings (PEFT <c>LoraConfig</c> semantics): each targeted Linear y = W x + b gains
/// <c>(alpha / rank) * B A x</c>, A [rank, in], B [out, rank].
/// </summary>
public sealed record LoraConfig
{
    /// <summary>
    /// The attention and feed-forward projections of every transformer block (docs/MODEL.md), the targets Flow-GRPO
    /// uses for Qwen-Image.
    /// </summary>
    public static IReadOnlyList<string> AttentionAndFeedForward { get; } =
    [
        "attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0",
        "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj", "attn.to_add_out",
        "img_mlp.net.0.proj", "img_mlp.net.2", "txt_mlp.net.0.proj", "txt_mlp.net.2",
    ];

    public int Rank { get; init; } = 16;

    public double Alpha { get; init; } = 16;

    /// <summary>
    /// Module-name patterns: a module is targeted when its full name equals a pattern or ends with "." + pattern
    /// (PEFT's rule for a list of names), so "attn.to_q" matches "transformer_blocks.7.attn.to_q".
    /// </summary>
    public IReadOnlyList<string> TargetModules { get; init; } = AttentionAndFeedForward;

    /// <summary>Dropout on the adapter input (training mode only).</summary>
    public double Dropout { get; init; }

    /// <summary>The factor on B A x.</summary>
    public double Scale => Alpha / Rank;

    /// <summary>True if the module called <paramref name="moduleName"/> is one of <see cref="TargetModules"/>.</summary>
    public bool Targets(string moduleName)
    {
        ArgumentNullException.ThrowIfNull(moduleName);
        foreach (var pattern in TargetModules)
        {
            if (moduleName == pattern || moduleName.EndsWith("." + pattern, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Throws <see cref="ArgumentException"/> for values no adapter can have.</summary>
    public void Validate()
    {
        if (Rank < 1)
        {
            throw new ArgumentException($"LoRA rank must be at least 1, got {Rank}");
        }

        if (!double.IsFinite(Alpha) || Alpha <= 0)
        {
            throw new ArgumentException($"LoRA alpha must be positive, got {Alpha}");
        }

        if (Dropout is < 0 or >= 1 || double.IsNaN(Dropout))
        {
            throw new ArgumentException($"LoRA dropout must be in [0, 1), got {Dropout}");
        }

        if (TargetModules.Count == 0 || TargetModules.Any(string.IsNullOrWhiteSpace))
        {
            throw new ArgumentException("LoRA target modules must be a non-empty list of module names");
        }
    }

    /// <summary>
    /// Trainable parameters these adapters would add to a transformer built from <paramref name="transformer"/>:
    /// rank x (in + out) per targeted Linear, from the config's parameter shapes alone (nothing is allocated).
    /// </summary>
    public long TrainableParameterCount(TransformerConfig transformer)
    {
        ArgumentNullException.ThrowIfNull(transformer);
        const string Suffix = ".weight";
        long total = 0;
        foreach (var (name, shape) in transformer.ParameterShapes())
        {
            // Every Linear has a 2-D weight; norms and embeddings are excluded by the module-name match.
            if (shape.Length == 2 && name.EndsWith(Suffix, StringComparison.Ordinal) && Targets(name[..^Suffix.Length]))
            {
                total += Rank * (shape[0] + shape[1]);
            }
        }

        return total;
    }
}
