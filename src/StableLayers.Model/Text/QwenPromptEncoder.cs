using StableLayers.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace StableLayers.Model.Text;

/// <summary>
/// The released pipeline's prompt path (diffusers' QwenImageLayeredPipeline._get_qwen_prompt_embeds and
/// encode_prompt): the prompt goes into the layered pipeline's system template, is tokenised with the Qwen2
/// tokenizer and run through the Qwen2.5-VL language model; the last hidden state (after the final norm) of the real
/// tokens, minus the template's first <see cref="DropTokens"/> tokens, is the prompt's embedding, cut to
/// <see cref="MaxSequenceLength"/> tokens; a batch is right-padded to its longest prompt with a mask.
/// Embeddings are cached per prompt as float32 host tensors, so a prompt is encoded once (GRPO's single prompt, the
/// true-CFG negative prompt) and the encoder can then be released with <see cref="ReleaseEncoder"/>.
/// </summary>
public sealed class QwenPromptEncoder : IPromptEncoder, IDisposable
{
    /// <summary>The template's part before the prompt: exactly <see cref="DropTokens"/> tokens, dropped from the output.</summary>
    public const string TemplatePrefix =
        "<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, text, spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\n";

    public const string TemplateSuffix = "<|im_end|>\n<|im_start|>assistant\n";

    /// <summary>The chat-template tokens the template uses, each one added token of the Qwen2 tokenizer.</summary>
    public static readonly IReadOnlyList<string> TemplateSpecialTokens = ["<|im_start|>", "<|im_end|>"];

    /// <summary>prompt_template_encode_start_idx of the reference.</summary>
    public const int DropTokens = 34;

    /// <summary>The reference's max_sequence_length default and upper bound.</summary>
    public const int MaxSequenceLength = 1024;

    private readonly Dictionary<string, Tensor> cache = new(StringComparer.Ordinal);
    private Qwen25VlTextEncoder? encoder;

    /// <param name="rejectOverLimit">The reference silently keeps the first <see cref="MaxSequenceLength"/> tokens
    /// of a longer prompt; true throws <see cref="BadInputException"/> instead (the CLI's choice: a cut prompt is
    /// rarely what a user meant).</param>
    public QwenPromptEncoder(QwenTokenizer tokenizer, Qwen25VlTextEncoder encoder, bool rejectOverLimit = false)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(encoder);
        if (tokenizer.VocabSize > encoder.Config.VocabSize)
        {
            throw new BadInputException(tokenizer.Source,
                $"the tokenizer has {tokenizer.VocabSize} tokens but the text encoder's vocab_size is {encoder.Config.VocabSize}");
        }

        CheckTokenizer(tokenizer);
        Tokenizer = tokenizer;
        this.encoder = encoder;
        RejectOverLimit = rejectOverLimit;
        Dim = encoder.Config.HiddenSize;
    }

    public QwenTokenizer Tokenizer { get; }

    public bool RejectOverLimit { get; }

    public int Dim { get; }

    /// <summary>How many prompts went through the encoder (cache misses).</summary>
    public int EncodedCount { get; private set; }

    public IReadOnlyCollection<string> CachedPrompts => cache.Keys;

    /// <summary>False after <see cref="ReleaseEncoder"/>: only cached prompts can be encoded.</summary>
    public bool HasEncoder => encoder is not null;

    /// <summary>
    /// Throws <see cref="BadInputException"/> naming the tokenizer file unless the template's chat tokens are single
    /// special tokens and its prefix is exactly <see cref="DropTokens"/> tokens: spelled out by BPE, the dropped
    /// tokens would no longer be the system prompt and every embedding would silently keep part of it.
    /// </summary>
    public static void CheckTokenizer(QwenTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        foreach (string special in TemplateSpecialTokens)
        {
            tokenizer.TokenId(special);
        }

        int prefix = tokenizer.Encode(TemplatePrefix).Length;
        if (prefix != DropTokens)
        {
            throw new BadInputException(tokenizer.Source, $"the pipeline's template prefix is {prefix} tokens with this tokenizer, not the {DropTokens} it drops (not a Qwen2 tokenizer?)");
        }
    }

    /// <summary>Loads text_encoder/ (Qwen2.5-VL) and tokenizer/ folders.</summary>
    public static QwenPromptEncoder Load(string textEncoderFolder, string tokenizerFolder, Device device, ScalarType dtype, bool rejectOverLimit = false)
    {
        var tokenizer = QwenTokenizer.Load(tokenizerFolder);
        CheckTokenizer(tokenizer);
        var (encoder, _) = Qwen25VlTextEncoderLoader.Load(textEncoderFolder, device, dtype);
        try
        {
            return new QwenPromptEncoder(tokenizer, encoder, rejectOverLimit);
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
    }

    /// <summary>The token ids the encoder sees for <paramref name="prompt"/> (template applied, nothing cut).</summary>
    public int[] TemplateIds(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        return Tokenizer.Encode(TemplatePrefix + prompt + TemplateSuffix);
    }

    public PromptEmbedding Encode(IReadOnlyList<string> prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        if (prompts.Count == 0)
        {
            throw new ArgumentException("no prompts", nameof(prompts));
        }

        EncodeMissing(prompts.Distinct(StringComparer.Ordinal).Where(p => !cache.ContainsKey(p)).ToList());
        var rows = prompts.Select(p => cache[p]).ToList();
        int len = rows.Max(r => (int)r.shape[0]);
        using var scope = NewDisposeScope();
        var embeds = zeros([prompts.Count, len, Dim], float32, CPU);
        var mask = zeros([prompts.Count, len], ScalarType.Bool, CPU);
        for (int b = 0; b < rows.Count; b++)
        {
            long s = rows[b].shape[0];
            embeds[b].narrow(0, 0, s).copy_(rows[b]);
            mask[b].narrow(0, 0, s).fill_(true);
        }

        return new PromptEmbedding(embeds.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope());
    }

    /// <summary>Moves the encoder (if not released) to <paramref name="device"/>; cached embeddings stay on the host.</summary>
    public void MoveEncoder(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        encoder?.to(device);
    }

    /// <summary>
    /// Throws <see cref="BadInputException"/> (one line) if <paramref name="prompt"/> is over
    /// <see cref="MaxSequenceLength"/> tokens after the template's dropped tokens, where the reference would cut it.
    /// </summary>
    public void CheckLength(string prompt)
    {
        int kept = TemplateIds(prompt).Length - DropTokens;
        if (kept > MaxSequenceLength)
        {
            throw new BadInputException("prompt", $"\"{Short(prompt)}\" is {kept} tokens with the template; the limit is {MaxSequenceLength}");
        }
    }

    /// <summary>Frees the encoder (cached prompts stay usable): GRPO encodes its prompts once, then needs the device memory.</summary>
    public void ReleaseEncoder()
    {
        encoder?.Dispose();
        encoder = null;
    }

    public void Dispose()
    {
        ReleaseEncoder();
        foreach (var t in cache.Values)
        {
            t.Dispose();
        }

        cache.Clear();
    }

    private void EncodeMissing(List<string> prompts)
    {
        if (prompts.Count == 0)
        {
            return;
        }

        var enc = encoder ?? throw new InvalidOperationException(
            $"the text encoder was released; prompt \"{Short(prompts[0])}\" is not cached");
        var ids = new List<int[]>(prompts.Count);
        foreach (var p in prompts)
        {
            var t = TemplateIds(p);
            int kept = t.Length - DropTokens;
            if (kept <= 0)
            {
                throw new InvalidOperationException($"the template of \"{Short(p)}\" has {t.Length} tokens, not more than the {DropTokens} dropped");
            }

            if (kept > MaxSequenceLength)
            {
                if (RejectOverLimit)
                {
                    CheckLength(p);
                }

                // Causal attention: the first DropTokens + MaxSequenceLength hidden states do not depend on later
                // tokens, so cutting the input gives exactly the reference's embeddings cut after encoding.
                t = t[..(DropTokens + MaxSequenceLength)];
            }

            ids.Add(t);
        }

        int len = ids.Max(i => i.Length);
        var flat = new long[prompts.Count * len];
        var maskFlat = new long[prompts.Count * len];
        for (int b = 0; b < ids.Count; b++)
        {
            for (int j = 0; j < ids[b].Length; j++)
            {
                flat[(b * len) + j] = ids[b][j];
                maskFlat[(b * len) + j] = 1;
            }
        }

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var idT = tensor(flat, [prompts.Count, len], device: enc.Device);
        var maskT = tensor(maskFlat, [prompts.Count, len], device: enc.Device);
        var hidden = enc.call(idT, maskT).to(float32).cpu();
        for (int b = 0; b < ids.Count; b++)
        {
            // Owned by the cache, not by any dispose scope.
            cache[prompts[b]] = hidden[b].narrow(0, DropTokens, ids[b].Length - DropTokens).clone().DetachFromDisposeScope();
            EncodedCount++;
        }
    }

    private static string Short(string p) => p.Length <= 40 ? p : p[..40] + "...";
}
