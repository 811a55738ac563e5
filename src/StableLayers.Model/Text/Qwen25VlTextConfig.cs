using System.Text.Json;
using StableLayers.Core;

namespace StableLayers.Model.Text;

/// <summary>
/// Hyper-parameters of the Qwen2.5-VL language model (the text stack Qwen-Image uses as its text encoder), read from a
/// transformers Qwen2_5_VLConfig config.json. The text fields may sit at top level (older files), under
/// <c>text_config</c> (newer ones) or both; <c>text_config</c> wins. RoPE settings may be in <c>rope_scaling</c> or
/// (transformers v5) <c>rope_parameters</c>.
/// </summary>
public sealed record Qwen25VlTextConfig
{
    public int VocabSize { get; init; } = 152064;
    public int HiddenSize { get; init; } = 3584;
    public int IntermediateSize { get; init; } = 18944;
    public int NumHiddenLayers { get; init; } = 28;
    public int NumAttentionHeads { get; init; } = 28;
    public int NumKeyValueHeads { get; init; } = 4;
    public double RmsNormEps { get; init; } = 1e-6;
    public double RopeTheta { get; init; } = 1_000_000;

    /// <summary>M-RoPE split of head_dim/2 into temporal/height/width parts; for text the three position rows are equal.</summary>
    public IReadOnlyList<int> MropeSection { get; init; } = [16, 24, 24];

    public bool TieWordEmbeddings { get; init; }

    public int HeadDim => HiddenSize / NumAttentionHeads;

    /// <summary>The released Qwen2.5-VL-7B-Instruct language model (Qwen-Image's text encoder).</summary>
    public static Qwen25VlTextConfig Qwen25Vl7B { get; } = new();

    /// <summary>Parameters of the language model (embeddings, decoder layers, final norm), optionally with lm_head.</summary>
    public long ParameterCount(bool includeLmHead = false)
    {
        long h = HiddenSize, kv = (long)NumKeyValueHeads * HeadDim, i = IntermediateSize;
        long attention = (h * h) + h /* q */ + (2 * ((h * kv) + kv)) /* k, v */ + (h * h) /* o, no bias */;
        long mlp = 3 * h * i;
        long layer = attention + mlp + (2 * h);
        long total = ((long)VocabSize * h) + (NumHiddenLayers * layer) + h;
        return includeLmHead && !TieWordEmbeddings ? total + ((long)VocabSize * h) : total;
    }

    public static Qwen25VlTextConfig Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new BadInputException(path, "text encoder config.json does not exist");
        }

        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            return FromJson(doc.RootElement, path);
        }
        catch (JsonException ex)
        {
            throw new BadInputException(path, "malformed config: " + ex.Message.ReplaceLineEndings(" "), ex);
        }
    }

    public static Qwen25VlTextConfig FromJson(JsonElement root, string source)
    {
        var text = root.TryGetProperty("text_config", out var tc) && tc.ValueKind == JsonValueKind.Object ? tc : (JsonElement?)null;
        JsonElement? Find(string name)
        {
            if (text is { } t && t.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null)
            {
                return v;
            }

            return root.TryGetProperty(name, out var r) && r.ValueKind != JsonValueKind.Null ? r : null;
        }

        int Int(string name) => Find(name) is { ValueKind: JsonValueKind.Number } v && v.TryGetInt32(out int x) && x > 0
            ? x
            : throw new BadInputException(source, $"'{name}' is missing or not a positive integer");

        var rope = Find("rope_parameters") ?? Find("rope_scaling");
        double theta = Find("rope_theta")?.GetDouble()
            ?? (rope is { ValueKind: JsonValueKind.Object } rp && rp.TryGetProperty("rope_theta", out var th) ? th.GetDouble() : 10000.0);
        IReadOnlyList<int>? section = null;
        if (rope is { ValueKind: JsonValueKind.Object } r2)
        {
            string ropeType = r2.TryGetProperty("rope_type", out var rt) ? rt.GetString() ?? "default"
                : r2.TryGetProperty("type", out var ty) ? ty.GetString() ?? "default" : "default";
            if (ropeType is not ("default" or "mrope"))
            {
                throw new BadInputException(source, $"rope type '{ropeType}' is not supported (default/mrope only)");
            }

            if (r2.TryGetProperty("mrope_section", out var ms) && ms.ValueKind == JsonValueKind.Array)
            {
                section = ms.EnumerateArray().Select(e => e.GetInt32()).ToList();
            }
        }

        var config = new Qwen25VlTextConfig
        {
            VocabSize = Int("vocab_size"),
            HiddenSize = Int("hidden_size"),
            IntermediateSize = Int("intermediate_size"),
            NumHiddenLayers = Int("num_hidden_layers"),
            NumAttentionHeads = Int("num_attention_heads"),
            NumKeyValueHeads = Find("num_key_value_heads") is not null ? Int("num_key_value_heads") : Int("num_attention_heads"),
            RmsNormEps = Find("rms_norm_eps")?.GetDouble() ?? 1e-6,
            RopeTheta = theta,
            MropeSection = section ?? [],
            TieWordEmbeddings = root.TryGetProperty("tie_word_embeddings", out var tie) && tie.ValueKind == JsonValueKind.True,
        };
        if (Find("hidden_act")?.GetString() is { } act && act != "silu")
        {
            throw new BadInputException(source, $"hidden_act '{act}' is not supported (silu only)");
        }

        config.Validate(source);
        return config;
    }

    public void Validate(string source)
    {
        if (HiddenSize % NumAttentionHeads != 0 || NumAttentionHeads % NumKeyValueHeads != 0 || HeadDim % 2 != 0)
        {
            throw new BadInputException(source, $"hidden_size {HiddenSize}, {NumAttentionHeads} heads and {NumKeyValueHeads} KV heads do not divide evenly into even head dims");
        }

        if (MropeSection.Count > 0 && MropeSection.Sum() != HeadDim / 2)
        {
            throw new BadInputException(source, $"mrope_section [{string.Join(",", MropeSection)}] must sum to head_dim/2 = {HeadDim / 2}");
        }
    }
}
