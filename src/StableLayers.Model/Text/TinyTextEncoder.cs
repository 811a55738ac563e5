using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace StableLayers.Model.Text;

/// <summary>Shape of the tiny text encoder (stored as text_encoder/config.json).</summary>
public sealed record TinyTextEncoderConfig
{
    [System.Text.Json.Serialization.JsonPropertyName("hidden_size")]
    public int HiddenSize { get; init; } = 64;

    [System.Text.Json.Serialization.JsonPropertyName("num_layers")]
    public int NumLayers { get; init; } = 2;

    [System.Text.Json.Serialization.JsonPropertyName("num_heads")]
    public int NumHeads { get; init; } = 4;

    [System.Text.Json.Serialization.JsonPropertyName("max_tokens")]
    public int MaxTokens { get; init; } = 32;

    [System.Text.Json.Serialization.JsonPropertyName("vocab_size")]
    public int VocabSize { get; init; }
}

/// <summary>
/// A small learned text encoder for the tiny preset: word embeddings + learned positions + a few
/// pre-norm self-attention blocks, output at the transformer's text width. It stands in for Qwen2.5-VL
/// so that prompt conditioning (basic vs detailed prompts) exists and can be compared on 2 cores.
/// </summary>
public sealed class TinyTextEncoder : nn.Module<Tensor, Tensor, Tensor>, IPromptEncoder
{
    private readonly Embedding token_embedding;
    private readonly Parameter position_embedding;
    private readonly ModuleList<TextBlock> layers;
    private readonly LayerNorm final_norm;

    public TinyTextEncoder(TinyTextEncoderConfig config, WordTokenizer tokenizer)
        : base(nameof(TinyTextEncoder))
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (config.HiddenSize % config.NumHeads != 0)
        {
            throw new ArgumentException("hidden_size must be a multiple of num_heads", nameof(config));
        }

        Config = config with { VocabSize = tokenizer.Count };
        Tokenizer = tokenizer;
        token_embedding = nn.Embedding(tokenizer.Count, config.HiddenSize, padding_idx: WordTokenizer.Pad);
        position_embedding = nn.Parameter(randn(config.MaxTokens, config.HiddenSize) * 0.02f);
        layers = new ModuleList<TextBlock>(Enumerable.Range(0, config.NumLayers).Select(_ => new TextBlock(config.HiddenSize, config.NumHeads)).ToArray());
        final_norm = nn.LayerNorm(config.HiddenSize);
        RegisterComponents();
    }

    public TinyTextEncoderConfig Config { get; }

    public WordTokenizer Tokenizer { get; }

    public int Dim => Config.HiddenSize;

    /// <summary>ids [B,S] long, mask [B,S] bool -> [B,S,hidden].</summary>
    public override Tensor forward(Tensor ids, Tensor mask)
    {
        long s = ids.shape[1];
        var h = token_embedding.call(ids) + position_embedding.narrow(0, 0, s).unsqueeze(0);
        foreach (var layer in layers)
        {
            h = layer.call(h, mask);
        }

        return final_norm.call(h) * mask.unsqueeze(-1).to(h.dtype);
    }

    public PromptEmbedding Encode(IReadOnlyList<string> prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        using var scope = NewDisposeScope();
        var (ids, mask) = Tokenize(prompts, position_embedding.device);
        var emb = call(ids, mask);
        return new PromptEmbedding(emb.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope());
    }

    /// <summary>Token ids and mask, padded to the longest prompt of the batch, on <paramref name="device"/> (default: the CPU).</summary>
    public (Tensor Ids, Tensor Mask) Tokenize(IReadOnlyList<string> prompts, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var encoded = prompts.Select(p => Tokenizer.Encode(p ?? string.Empty, Config.MaxTokens)).ToArray();
        int len = encoded.Max(e => e.Length);
        var ids = new long[prompts.Count * len];
        var mask = new bool[prompts.Count * len];
        for (int b = 0; b < encoded.Length; b++)
        {
            for (int t = 0; t < encoded[b].Length; t++)
            {
                ids[(b * len) + t] = encoded[b][t];
                mask[(b * len) + t] = true;
            }
        }

        return (tensor(ids, [prompts.Count, len], device: device ?? CPU), tensor(mask, [prompts.Count, len], device: device ?? CPU));
    }

    private sealed class TextBlock : nn.Module<Tensor, Tensor, Tensor>
    {
        private readonly int heads;
        private readonly LayerNorm norm1;
        private readonly Linear qkv;
        private readonly Linear proj;
        private readonly LayerNorm norm2;
        private readonly Linear fc1;
        private readonly Linear fc2;

        public TextBlock(int dim, int heads)
            : base(nameof(TextBlock))
        {
            this.heads = heads;
            norm1 = nn.LayerNorm(dim);
            qkv = nn.Linear(dim, dim * 3);
            proj = nn.Linear(dim, dim);
            norm2 = nn.LayerNorm(dim);
            fc1 = nn.Linear(dim, dim * 4);
            fc2 = nn.Linear(dim * 4, dim);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x, Tensor mask)
        {
            long b = x.shape[0], s = x.shape[1], d = x.shape[2];
            var qkvOut = qkv.call(norm1.call(x)).view(b, s, 3, heads, d / heads).permute(2, 0, 3, 1, 4);
            // Keys that are padding are excluded; every query still sees at least its own real tokens.
            var attnMask = mask.view(b, 1, 1, s);
            var a = nn.functional.scaled_dot_product_attention(qkvOut[0], qkvOut[1], qkvOut[2], attnMask);
            x = x + proj.call(a.transpose(1, 2).reshape(b, s, d));
            return x + fc2.call(nn.functional.gelu(fc1.call(norm2.call(x))));
        }
    }
}
