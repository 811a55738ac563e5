using System.Text.Json;
using System.Text.Json.Serialization;

namespace StableLayers.Model.Transformer;

/// <summary>
/// Hyper-parameters of QwenImageTransformer2DModel, with JSON names exactly as in the diffusers
/// transformer <c>config.json</c> so that the released file deserialises directly (unknown keys such as
/// <c>_class_name</c> are ignored).
/// </summary>
public sealed record TransformerConfig
{
    [JsonPropertyName("patch_size")] public int PatchSize { get; init; } = 2;
    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 64;
    [JsonPropertyName("out_channels")] public int OutChannels { get; init; } = 16;
    [JsonPropertyName("num_layers")] public int NumLayers { get; init; } = 60;
    [JsonPropertyName("attention_head_dim")] public int AttentionHeadDim { get; init; } = 128;
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; } = 24;
    [JsonPropertyName("joint_attention_dim")] public int JointAttentionDim { get; init; } = 3584;
    [JsonPropertyName("axes_dims_rope")] public IReadOnlyList<int> AxesDimsRope { get; init; } = [16, 56, 56];
    [JsonPropertyName("use_layer3d_rope")] public bool UseLayer3dRope { get; init; } = true;
    [JsonPropertyName("use_additional_t_cond")] public bool UseAdditionalTCond { get; init; } = true;
    [JsonPropertyName("zero_cond_t")] public bool ZeroCondT { get; init; }
    [JsonPropertyName("guidance_embeds")] public bool GuidanceEmbeds { get; init; }

    /// <summary>Width of the residual streams (heads x head dim).</summary>
    [JsonIgnore] public int InnerDim => NumAttentionHeads * AttentionHeadDim;

    /// <summary>Channels per output token (out channels x patch area).</summary>
    [JsonIgnore] public int OutputTokenChannels => PatchSize * PatchSize * OutChannels;

    /// <summary>The released Qwen-Image-Layered transformer (20.43B parameters).</summary>
    public static TransformerConfig Full { get; } = new();

    /// <summary>
    /// A small config of the same architecture for tests. The RoPE axes split the head dim as
    /// 1/4 (layer), 3/8, 3/8, rounded to even sizes, since each axis rotates channel pairs.
    /// </summary>
    public static TransformerConfig Tiny(int layers = 2, int heads = 2, int headDim = 16, int textDim = 32, int inChannels = 16, int outChannels = 4)
    {
        if (headDim % 8 != 0)
        {
            throw new ArgumentException("head dim must be a multiple of 8 so that every RoPE axis gets whole channel pairs", nameof(headDim));
        }

        int layerAxis = headDim / 4 / 2 * 2;
        int spatial = (headDim - layerAxis) / 2 / 2 * 2;
        return new TransformerConfig
        {
            NumLayers = layers,
            NumAttentionHeads = heads,
            AttentionHeadDim = headDim,
            JointAttentionDim = textDim,
            InChannels = inChannels,
            OutChannels = outChannels,
            AxesDimsRope = [layerAxis, headDim - layerAxis - spatial, spatial],
        };
    }

    public static TransformerConfig FromJson(string json) =>
        JsonSerializer.Deserialize<TransformerConfig>(json) ?? throw new JsonException("empty transformer config");

    public string ToJson() => JsonSerializer.Serialize(this);

    /// <summary>Throws if the config cannot describe a model this port can build.</summary>
    public void Validate()
    {
        if (AxesDimsRope.Count != 3 || AxesDimsRope.Sum() != AttentionHeadDim || AxesDimsRope.Any(d => d <= 0 || d % 2 != 0))
        {
            throw new ArgumentException($"axes_dims_rope [{string.Join(",", AxesDimsRope)}] must be three positive even sizes summing to attention_head_dim {AttentionHeadDim}");
        }

        if (!UseLayer3dRope)
        {
            throw new NotSupportedException("only the layered model (use_layer3d_rope = true) is ported");
        }

        if (GuidanceEmbeds)
        {
            throw new NotSupportedException("guidance_embeds: diffusers' Qwen timestep embedding has no guidance branch");
        }
    }

    /// <summary>
    /// Every parameter's diffusers state-dict name and shape, computed from the config alone (no tensors),
    /// so that the full 20B model can be sized and checked against a checkpoint index without building it.
    /// </summary>
    public IReadOnlyDictionary<string, long[]> ParameterShapes()
    {
        long d = InnerDim, head = AttentionHeadDim, mlp = 4L * InnerDim;
        var shapes = new Dictionary<string, long[]>();
        void Linear(string name, long input, long output)
        {
            shapes[name + ".weight"] = [output, input];
            shapes[name + ".bias"] = [output];
        }

        Linear("img_in", InChannels, d);
        shapes["txt_norm.weight"] = [JointAttentionDim];
        Linear("txt_in", JointAttentionDim, d);
        Linear("time_text_embed.timestep_embedder.linear_1", TimestepEmbedding.Channels, d);
        Linear("time_text_embed.timestep_embedder.linear_2", d, d);
        if (UseAdditionalTCond)
        {
            shapes["time_text_embed.addition_t_embedding.weight"] = [2, d];
        }

        for (int i = 0; i < NumLayers; i++)
        {
            string b = $"transformer_blocks.{i}.";
            foreach (var stream in new[] { "img", "txt" })
            {
                Linear(b + stream + "_mod.1", d, 6 * d);
                Linear(b + stream + "_mlp.net.0.proj", d, mlp);
                Linear(b + stream + "_mlp.net.2", mlp, d);
            }

            foreach (var proj in new[] { "to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_out.0", "to_add_out" })
            {
                Linear(b + "attn." + proj, d, d);
            }

            foreach (var norm in new[] { "norm_q", "norm_k", "norm_added_q", "norm_added_k" })
            {
                shapes[b + "attn." + norm + ".weight"] = [head];
            }
        }

        Linear("norm_out.linear", d, 2 * d);
        Linear("proj_out", d, OutputTokenChannels);
        return shapes;
    }

    /// <summary>Total number of parameters (from <see cref="ParameterShapes"/>).</summary>
    public long ParameterCount() => ParameterShapes().Values.Sum(s => s.Aggregate(1L, (a, b) => a * b));
}
