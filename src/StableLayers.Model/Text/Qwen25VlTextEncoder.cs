using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Model.Text;

/// <summary>What one forward pass returns.</summary>
/// <param name="HiddenStates">transformers' <c>output_hidden_states</c> tuple: the embeddings, each decoder layer's output but
/// the last, and last the final-normed output of the last layer (<c>hidden_states[-1]</c>, what Qwen-Image uses).</param>
/// <param name="LastLayerPreNorm">The last decoder layer's raw output (not in the tuple).</param>
public sealed record TextEncoderOutputs(IReadOnlyList<Tensor> HiddenStates, Tensor LastLayerPreNorm);

/// <summary>
/// The language model of Qwen2.5-VL as a text encoder: token embeddings, decoder layers (pre-RMSNorm, grouped-query
/// attention with q/k/v biases and rotary positions, SwiGLU MLP), final RMSNorm. For text-only input the three
/// M-RoPE position rows are equal, so the multimodal RoPE reduces to 1-D RoPE over positions cumsum(mask) - 1 and the
/// mrope_section split does not change anything. State names follow transformers after the model prefix:
/// <c>embed_tokens.weight</c>, <c>layers.N.self_attn.q_proj.weight</c>, ..., <c>norm.weight</c>.
/// </summary>
public sealed class Qwen25VlTextEncoder : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Embedding embed_tokens;
    private readonly ModuleList<DecoderLayer> layers;
    private readonly QwenRmsNorm norm;

    public Qwen25VlTextEncoder(Qwen25VlTextConfig config, Device device, ScalarType dtype = ScalarType.Float32)
        : base(nameof(Qwen25VlTextEncoder))
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(device);
        config.Validate("text encoder config");
        Config = config;
        embed_tokens = nn.Embedding(config.VocabSize, config.HiddenSize, device: device, dtype: dtype);
        layers = new ModuleList<DecoderLayer>(Enumerable.Range(0, config.NumHiddenLayers)
            .Select(_ => new DecoderLayer(config, device, dtype)).ToArray());
        norm = new QwenRmsNorm(config.HiddenSize, config.RmsNormEps, device, dtype);
        RegisterComponents();
    }

    public Qwen25VlTextConfig Config { get; }

    public Device Device => embed_tokens.weight!.device;

    public ScalarType DType => embed_tokens.weight!.dtype;

    /// <summary>ids [B, L] (int64), mask [B, L] (1/true = real token) -> <c>hidden_states[-1]</c> [B, L, hidden] (final norm applied).</summary>
    public override Tensor forward(Tensor ids, Tensor mask)
    {
        using var scope = NewDisposeScope();
        var outputs = Run(ids, mask, keepAll: false);
        return outputs.HiddenStates[^1].MoveToOuterDisposeScope();
    }

    /// <summary>Every hidden state transformers returns with output_hidden_states, plus the last layer's pre-norm output.</summary>
    public TextEncoderOutputs ForwardAll(Tensor ids, Tensor mask)
    {
        using var scope = NewDisposeScope();
        var o = Run(ids, mask, keepAll: true);
        foreach (var h in o.HiddenStates)
        {
            h.MoveToOuterDisposeScope();
        }

        o.LastLayerPreNorm.MoveToOuterDisposeScope();
        return o;
    }

    /// <summary>Text-only position ids: cumsum(mask) - 1 on real tokens, 1 on padding (as transformers' get_rope_index).</summary>
    public static Tensor PositionIds(Tensor mask)
    {
        ArgumentNullException.ThrowIfNull(mask);
        using var scope = NewDisposeScope();
        var m = mask.to(ScalarType.Int64);
        var pos = m.cumsum(-1) - 1;
        return pos.masked_fill(m.eq(0), 1).MoveToOuterDisposeScope();
    }

    private TextEncoderOutputs Run(Tensor ids, Tensor mask, bool keepAll)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(mask);
        if (ids.dim() != 2 || !mask.shape.SequenceEqual(ids.shape))
        {
            throw new ArgumentException($"ids and mask must both be [B, L]; got [{string.Join(",", ids.shape)}] and [{string.Join(",", mask.shape)}]");
        }

        var device = Device;
        ids = ids.to(ScalarType.Int64, device);
        var keyMask = mask.to(device).ne(0);
        long l = ids.shape[1];

        var (cos, sin) = Rope(PositionIds(keyMask), DType);
        var attnMask = AttentionMask(keyMask, l, device);

        var h = embed_tokens.call(ids);
        var states = new List<Tensor> { h };
        for (int i = 0; i < layers.Count; i++)
        {
            h = layers[i].call(h, cos, sin, attnMask);
            if (keepAll && i < layers.Count - 1)
            {
                states.Add(h);
            }
        }

        var normed = norm.call(h);
        states.Add(normed);
        return keepAll ? new TextEncoderOutputs(states, h) : new TextEncoderOutputs([normed], h);
    }

    /// <summary>cos/sin [B, L, head_dim]: the frequencies concatenated with themselves (half-split rotation), made in float32.</summary>
    private (Tensor Cos, Tensor Sin) Rope(Tensor positions, ScalarType dtype)
    {
        // Made per call on the positions' device, in float32 whatever the weights' dtype (transformers keeps inv_freq
        // as a non-persistent float32 buffer).
        int d = Config.HeadDim;
        var exponent = arange(0, d, 2, dtype: ScalarType.Int64, device: positions.device).to(ScalarType.Float32) / d;
        var invFreq = pow(tensor((float)Config.RopeTheta, device: positions.device), exponent).reciprocal();
        var freqs = positions.to(ScalarType.Float32).unsqueeze(-1) * invFreq;
        var emb = cat([freqs, freqs], -1);
        return (emb.cos().to(dtype), emb.sin().to(dtype));
    }

    /// <summary>
    /// [B, 1, L, L] bool, true = attend: causal and the key is a real token. A query row with no allowed key (a padded
    /// query before every real token, i.e. left padding) may attend to itself so that it stays finite; such rows are padding.
    /// </summary>
    private static Tensor AttentionMask(Tensor keyMask, long l, Device device)
    {
        var causal = ones(l, l, ScalarType.Bool, device: device).tril();
        var mask = causal.unsqueeze(0) & keyMask.unsqueeze(1);
        var empty = mask.any(-1, keepdim: true).logical_not();
        var self = eye(l, dtype: ScalarType.Bool, device: device).unsqueeze(0);
        return (mask | (empty & self)).unsqueeze(1);
    }

    internal static Tensor RotateHalf(Tensor x)
    {
        long half = x.shape[^1] / 2;
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        return cat([x2.neg(), x1], -1);
    }

    private sealed class DecoderLayer : nn.Module<Tensor, Tensor, Tensor, Tensor, Tensor>
    {
        private readonly Attention self_attn;
        private readonly Mlp mlp;
        private readonly QwenRmsNorm input_layernorm;
        private readonly QwenRmsNorm post_attention_layernorm;

        public DecoderLayer(Qwen25VlTextConfig c, Device device, ScalarType dtype)
            : base(nameof(DecoderLayer))
        {
            self_attn = new Attention(c, device, dtype);
            mlp = new Mlp(c, device, dtype);
            input_layernorm = new QwenRmsNorm(c.HiddenSize, c.RmsNormEps, device, dtype);
            post_attention_layernorm = new QwenRmsNorm(c.HiddenSize, c.RmsNormEps, device, dtype);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x, Tensor cos, Tensor sin, Tensor mask)
        {
            using var scope = NewDisposeScope();
            var h = x + self_attn.call(input_layernorm.call(x), cos, sin, mask);
            return (h + mlp.call(post_attention_layernorm.call(h))).MoveToOuterDisposeScope();
        }
    }

    private sealed class Attention : nn.Module<Tensor, Tensor, Tensor, Tensor, Tensor>
    {
        private readonly Linear q_proj;
        private readonly Linear k_proj;
        private readonly Linear v_proj;
        private readonly Linear o_proj;
        private readonly int heads;
        private readonly int kvHeads;
        private readonly int headDim;

        public Attention(Qwen25VlTextConfig c, Device device, ScalarType dtype)
            : base(nameof(Attention))
        {
            heads = c.NumAttentionHeads;
            kvHeads = c.NumKeyValueHeads;
            headDim = c.HeadDim;
            q_proj = nn.Linear(c.HiddenSize, heads * headDim, hasBias: true, device: device, dtype: dtype);
            k_proj = nn.Linear(c.HiddenSize, kvHeads * headDim, hasBias: true, device: device, dtype: dtype);
            v_proj = nn.Linear(c.HiddenSize, kvHeads * headDim, hasBias: true, device: device, dtype: dtype);
            o_proj = nn.Linear(heads * headDim, c.HiddenSize, hasBias: false, device: device, dtype: dtype);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x, Tensor cos, Tensor sin, Tensor mask)
        {
            using var scope = NewDisposeScope();
            long b = x.shape[0], l = x.shape[1];
            var q = q_proj.call(x).view(b, l, heads, headDim).transpose(1, 2);
            var k = k_proj.call(x).view(b, l, kvHeads, headDim).transpose(1, 2);
            var v = v_proj.call(x).view(b, l, kvHeads, headDim).transpose(1, 2);

            var c = cos.unsqueeze(1);
            var s = sin.unsqueeze(1);
            q = (q * c) + (RotateHalf(q) * s);
            k = (k * c) + (RotateHalf(k) * s);

            // Grouped-query attention: query head h reads KV head h / (heads / kvHeads), each KV head repeated in place.
            int rep = heads / kvHeads;
            if (rep > 1)
            {
                k = k.repeat_interleave(rep, dim: 1);
                v = v.repeat_interleave(rep, dim: 1);
            }

            var a = nn.functional.scaled_dot_product_attention(q, k, v, mask);
            return o_proj.call(a.transpose(1, 2).reshape(b, l, heads * headDim)).MoveToOuterDisposeScope();
        }
    }

    private sealed class Mlp : nn.Module<Tensor, Tensor>
    {
        private readonly Linear gate_proj;
        private readonly Linear up_proj;
        private readonly Linear down_proj;

        public Mlp(Qwen25VlTextConfig c, Device device, ScalarType dtype)
            : base(nameof(Mlp))
        {
            gate_proj = nn.Linear(c.HiddenSize, c.IntermediateSize, hasBias: false, device: device, dtype: dtype);
            up_proj = nn.Linear(c.HiddenSize, c.IntermediateSize, hasBias: false, device: device, dtype: dtype);
            down_proj = nn.Linear(c.IntermediateSize, c.HiddenSize, hasBias: false, device: device, dtype: dtype);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            return down_proj.call(nn.functional.silu(gate_proj.call(x)) * up_proj.call(x)).MoveToOuterDisposeScope();
        }
    }

    /// <summary>Qwen2 RMSNorm: normalised in float32, cast back to the input dtype, then scaled by the weight.</summary>
    private sealed class QwenRmsNorm : nn.Module<Tensor, Tensor>
    {
        private readonly Parameter weight;
        private readonly double eps;

        public QwenRmsNorm(int dim, double eps, Device device, ScalarType dtype)
            : base(nameof(QwenRmsNorm))
        {
            this.eps = eps;
            weight = new Parameter(ones(dim, dtype: dtype, device: device));
            RegisterComponents();
        }

        public override Tensor forward(Tensor input)
        {
            using var scope = NewDisposeScope();
            var x = input.to(ScalarType.Float32);
            x = x * rsqrt(x.pow(2).mean([-1], keepdim: true) + eps);
            return (weight * x.to(input.dtype)).MoveToOuterDisposeScope();
        }
    }
}
