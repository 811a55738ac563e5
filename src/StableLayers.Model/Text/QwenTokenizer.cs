using System.Text;
using System.Text.Json;
using StableLayers.Core;

namespace StableLayers.Model.Text;

/// <summary>A token matched in the raw text before any other step (special tokens such as &lt;|im_start|&gt;).</summary>
public sealed record AddedToken(int Id, string Content, bool Special);

/// <summary>
/// The Qwen2-family tokenizer (Qwen2, Qwen2.5, Qwen2.5-VL, Qwen3): added tokens are split out of the raw text first,
/// the rest is NFC-normalised, split by <see cref="QwenPreTokenizer"/>, mapped byte by byte to GPT-2's printable
/// byte alphabet and merged by byte-pair ranks. Reads a tokenizer folder: tokenizer.json, or vocab.json +
/// merges.txt with the added tokens from tokenizer_config.json. No BOS/EOS is added (Qwen adds none).
/// </summary>
public sealed class QwenTokenizer
{
    public const string TokenizerJsonName = "tokenizer.json";
    public const string VocabName = "vocab.json";
    public const string MergesName = "merges.txt";
    public const string ConfigName = "tokenizer_config.json";

    private static readonly char[] ByteToChar = BuildByteAlphabet();
    private static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, b) => (c, b)).ToDictionary(p => p.c, p => (byte)p.b);

    private readonly Dictionary<string, int> vocab;
    private readonly Dictionary<int, string> idToToken;
    private readonly Dictionary<(int Left, int Right), (int Rank, int Merged)> merges;
    private readonly int[] byteIds = new int[256];
    private readonly Dictionary<string, AddedToken> added;
    private readonly Dictionary<char, AddedToken[]> addedByFirstChar;
    private readonly Dictionary<string, int[]> cache = new(StringComparer.Ordinal);
    private readonly Lock cacheLock = new();

    private QwenTokenizer(string source, Dictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> mergeList, IReadOnlyList<AddedToken> addedTokens)
    {
        Source = source;
        this.vocab = vocab;
        idToToken = new Dictionary<int, string>(vocab.Count + addedTokens.Count);
        foreach (var (tok, id) in vocab)
        {
            idToToken[id] = tok;
        }

        for (int b = 0; b < 256; b++)
        {
            byteIds[b] = vocab.TryGetValue(ByteToChar[b].ToString(), out int id)
                ? id
                : throw new BadInputException(source, $"the vocabulary has no token for byte {b} ('{ByteToChar[b]}'); not a byte-level BPE vocabulary");
        }

        merges = new Dictionary<(int, int), (int, int)>(mergeList.Count);
        for (int rank = 0; rank < mergeList.Count; rank++)
        {
            var (l, r) = mergeList[rank];
            if (!vocab.TryGetValue(l, out int li) || !vocab.TryGetValue(r, out int ri) || !vocab.TryGetValue(l + r, out int mi))
            {
                throw new BadInputException(source, $"merge {rank} ('{l}' '{r}') uses a token that is not in the vocabulary");
            }

            merges.TryAdd((li, ri), (rank, mi));
        }

        added = new Dictionary<string, AddedToken>(StringComparer.Ordinal);
        foreach (var t in addedTokens)
        {
            if (t.Content.Length == 0)
            {
                throw new BadInputException(source, $"added token {t.Id} is empty");
            }

            added[t.Content] = t;
            idToToken[t.Id] = t.Content;
        }

        // Longest first, so that at one position the longest added token wins (leftmost-longest matching).
        addedByFirstChar = added.Values.GroupBy(t => t.Content[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ToArray());
        VocabSize = idToToken.Count == 0 ? 0 : idToToken.Keys.Max() + 1;
    }

    /// <summary>The file the vocabulary came from (named in errors).</summary>
    public string Source { get; }

    /// <summary>One more than the largest token id (added tokens included).</summary>
    public int VocabSize { get; }

    public IReadOnlyCollection<AddedToken> AddedTokens => added.Values;

    /// <summary>Reads a tokenizer folder: tokenizer.json if present, else vocab.json + merges.txt (+ tokenizer_config.json).</summary>
    public static QwenTokenizer Load(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        if (!Directory.Exists(folder))
        {
            throw new BadInputException(folder, "tokenizer folder does not exist");
        }

        string json = Path.Combine(folder, TokenizerJsonName);
        string configPath = Path.Combine(folder, ConfigName);
        string? config = File.Exists(configPath) ? configPath : null;
        if (File.Exists(json))
        {
            using var s = File.OpenRead(json);
            using var c = config is null ? null : File.OpenRead(config);
            return FromTokenizerJson(s, json, c, config);
        }

        string vocabPath = Path.Combine(folder, VocabName);
        string mergesPath = Path.Combine(folder, MergesName);
        if (!File.Exists(vocabPath) || !File.Exists(mergesPath))
        {
            throw new BadInputException(folder, $"no {TokenizerJsonName}, and no {VocabName} + {MergesName}, in this folder");
        }

        using var v = File.OpenRead(vocabPath);
        using var m = File.OpenRead(mergesPath);
        using var cfg = config is null ? null : File.OpenRead(config);
        return FromVocabAndMerges(v, vocabPath, m, mergesPath, cfg, config);
    }

    /// <summary>Reads a Hugging Face tokenizer.json (BPE model, NFC normaliser, Qwen2 split + byte-level pre-tokenizer).</summary>
    /// <param name="configStream">tokenizer_config.json, optional: its special-token names must all exist.</param>
    public static QwenTokenizer FromTokenizerJson(Stream stream, string source, Stream? configStream = null, string? configSource = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(source);
        QwenTokenizer tokenizer;
        try
        {
            using var doc = JsonDocument.Parse(stream);
            var root = doc.RootElement;
            var model = Property(root, "model", source);
            string type = model.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "BPE";
            if (type != "BPE")
            {
                throw new BadInputException(source, $"model type '{type}' is not supported (byte-level BPE only)");
            }

            CheckNormalizer(root, source);
            CheckPreTokenizer(root, source);
            var vocab = ReadVocab(Property(model, "vocab", source), source);
            var mergeList = new List<(string, string)>();
            foreach (var m in Property(model, "merges", source).EnumerateArray())
            {
                mergeList.Add(ParseMerge(m, source, mergeList.Count));
            }

            var addedTokens = new List<AddedToken>();
            if (root.TryGetProperty("added_tokens", out var at) && at.ValueKind == JsonValueKind.Array)
            {
                foreach (var a in at.EnumerateArray())
                {
                    addedTokens.Add(new AddedToken(Property(a, "id", source).GetInt32(), Property(a, "content", source).GetString() ?? "",
                        a.TryGetProperty("special", out var sp) && sp.GetBoolean()));
                }
            }

            tokenizer = new QwenTokenizer(source, vocab, mergeList, addedTokens);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            throw new BadInputException(source, "malformed tokenizer file: " + OneLine(ex.Message), ex);
        }

        if (configStream is not null)
        {
            tokenizer.CheckConfig(configStream, configSource ?? ConfigName);
        }

        return tokenizer;
    }

    /// <summary>Reads vocab.json and merges.txt (GPT-2 format); added tokens come from tokenizer_config.json's added_tokens_decoder.</summary>
    public static QwenTokenizer FromVocabAndMerges(Stream vocabStream, string vocabSource, Stream mergesStream, string mergesSource,
        Stream? configStream = null, string? configSource = null)
    {
        ArgumentNullException.ThrowIfNull(vocabStream);
        ArgumentNullException.ThrowIfNull(mergesStream);
        Dictionary<string, int> vocab;
        try
        {
            using var doc = JsonDocument.Parse(vocabStream);
            vocab = ReadVocab(doc.RootElement, vocabSource);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            throw new BadInputException(vocabSource, "malformed vocabulary: " + OneLine(ex.Message), ex);
        }

        var mergeList = new List<(string, string)>();
        using (var reader = new StreamReader(mergesStream, Encoding.UTF8))
        {
            int lineNo = 0;
            while (reader.ReadLine() is { } line)
            {
                lineNo++;
                if ((lineNo == 1 && line.StartsWith("#version", StringComparison.Ordinal)) || line.Length == 0)
                {
                    continue;
                }

                var parts = line.Split(' ');
                if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
                {
                    throw new BadInputException(mergesSource, $"line {lineNo} is not two tokens separated by one space");
                }

                mergeList.Add((parts[0], parts[1]));
            }
        }

        var addedTokens = new List<AddedToken>();
        JsonDocument? config = null;
        string cfgName = configSource ?? ConfigName;
        try
        {
            if (configStream is not null)
            {
                config = JsonDocument.Parse(configStream);
                if (config.RootElement.TryGetProperty("added_tokens_decoder", out var dec))
                {
                    foreach (var p in dec.EnumerateObject())
                    {
                        addedTokens.Add(new AddedToken(int.Parse(p.Name, System.Globalization.CultureInfo.InvariantCulture),
                            Property(p.Value, "content", cfgName).GetString() ?? "",
                            p.Value.TryGetProperty("special", out var sp) && sp.GetBoolean()));
                    }
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException or OverflowException)
        {
            config?.Dispose();
            throw new BadInputException(cfgName, "malformed tokenizer config: " + OneLine(ex.Message), ex);
        }

        var tokenizer = new QwenTokenizer(vocabSource, vocab, mergeList, addedTokens);
        if (config is not null)
        {
            using (config)
            {
                tokenizer.CheckConfigRoot(config.RootElement, cfgName);
            }
        }

        return tokenizer;
    }

    /// <summary>The id of an added (special) token such as &lt;|im_start|&gt;.</summary>
    public int TokenId(string addedToken)
    {
        ArgumentNullException.ThrowIfNull(addedToken);
        return added.TryGetValue(addedToken, out var t)
            ? t.Id
            : throw new BadInputException(Source, $"unknown special token '{addedToken}' (known: {string.Join(", ", added.Keys.Order(StringComparer.Ordinal).Take(12))})");
    }

    /// <summary>Token ids of <paramref name="text"/>; added tokens in the text become their ids.</summary>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        int segmentStart = 0;
        int i = 0;
        while (i < text.Length)
        {
            if (addedByFirstChar.TryGetValue(text[i], out var candidates))
            {
                AddedToken? hit = null;
                foreach (var c in candidates)
                {
                    if (text.AsSpan(i).StartsWith(c.Content, StringComparison.Ordinal))
                    {
                        hit = c;
                        break;
                    }
                }

                if (hit is not null)
                {
                    EncodeOrdinary(text.AsSpan(segmentStart, i - segmentStart), ids);
                    ids.Add(hit.Id);
                    i += hit.Content.Length;
                    segmentStart = i;
                    continue;
                }
            }

            i++;
        }

        EncodeOrdinary(text.AsSpan(segmentStart), ids);
        return ids.ToArray();
    }

    /// <summary>The text of <paramref name="ids"/> (bytes that do not form valid UTF-8 become U+FFFD).</summary>
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var sb = new StringBuilder();
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            if (!idToToken.TryGetValue(id, out var tok))
            {
                throw new BadInputException(Source, $"token id {id} is not in the vocabulary");
            }

            if (added.ContainsKey(tok))
            {
                sb.Append(Encoding.UTF8.GetString(bytes.ToArray()));
                bytes.Clear();
                sb.Append(tok);
                continue;
            }

            foreach (char ch in tok)
            {
                bytes.Add(CharToByte.TryGetValue(ch, out byte b) ? b : (byte)'?');
            }
        }

        sb.Append(Encoding.UTF8.GetString(bytes.ToArray()));
        return sb.ToString();
    }

    private void EncodeOrdinary(ReadOnlySpan<char> segment, List<int> ids)
    {
        if (segment.IsEmpty)
        {
            return;
        }

        string normalized = UnicodeNfc.Normalize(segment.ToString());
        foreach (var piece in QwenPreTokenizer.Split(normalized))
        {
            ids.AddRange(EncodeWord(piece));
        }
    }

    private int[] EncodeWord(string word)
    {
        lock (cacheLock)
        {
            if (cache.TryGetValue(word, out var hit))
            {
                return hit;
            }
        }

        var bytes = Encoding.UTF8.GetBytes(word);
        var symbols = new List<int>(bytes.Length);
        foreach (byte b in bytes)
        {
            symbols.Add(byteIds[b]);
        }

        // Repeatedly merge the adjacent pair with the lowest rank (leftmost on ties) until none is in the merge table.
        while (symbols.Count > 1)
        {
            int bestRank = int.MaxValue, bestAt = -1, bestMerged = -1;
            for (int k = 0; k + 1 < symbols.Count; k++)
            {
                if (merges.TryGetValue((symbols[k], symbols[k + 1]), out var m) && m.Rank < bestRank)
                {
                    bestRank = m.Rank;
                    bestAt = k;
                    bestMerged = m.Merged;
                }
            }

            if (bestAt < 0)
            {
                break;
            }

            symbols[bestAt] = bestMerged;
            symbols.RemoveAt(bestAt + 1);
        }

        var result = symbols.ToArray();
        if (word.Length <= 64)
        {
            lock (cacheLock)
            {
                if (cache.Count > 100_000)
                {
                    cache.Clear();
                }

                cache[word] = result;
            }
        }

        return result;
    }

    private void CheckConfig(Stream configStream, string configSource)
    {
        try
        {
            using var doc = JsonDocument.Parse(configStream);
            CheckConfigRoot(doc.RootElement, configSource);
        }
        catch (JsonException ex)
        {
            throw new BadInputException(configSource, "malformed tokenizer config: " + OneLine(ex.Message), ex);
        }
    }

    /// <summary>Every special token the config names (eos, pad, bos, unk, additional_special_tokens) must exist.</summary>
    private void CheckConfigRoot(JsonElement root, string configSource)
    {
        var names = new List<string>();
        foreach (var key in new[] { "eos_token", "pad_token", "bos_token", "unk_token" })
        {
            if (root.TryGetProperty(key, out var v))
            {
                if (v.ValueKind == JsonValueKind.String)
                {
                    names.Add(v.GetString()!);
                }
                else if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String)
                {
                    names.Add(c.GetString()!);
                }
            }
        }

        if (root.TryGetProperty("additional_special_tokens", out var extra) && extra.ValueKind == JsonValueKind.Array)
        {
            names.AddRange(extra.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()!));
        }

        foreach (var name in names)
        {
            if (!added.ContainsKey(name) && !vocab.ContainsKey(name))
            {
                throw new BadInputException(configSource, $"names the special token '{name}', which the tokenizer does not have");
            }
        }
    }

    private static void CheckNormalizer(JsonElement root, string source)
    {
        if (!root.TryGetProperty("normalizer", out var n) || n.ValueKind == JsonValueKind.Null)
        {
            throw new BadInputException(source, "normalizer is missing; the Qwen2 tokenizer uses NFC");
        }

        string type = n.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "";
        if (type != "NFC")
        {
            throw new BadInputException(source, $"normalizer '{type}' is not supported (the Qwen2 tokenizer uses NFC)");
        }
    }

    private static void CheckPreTokenizer(JsonElement root, string source)
    {
        var p = Property(root, "pre_tokenizer", source);
        string? pattern = null;
        bool byteLevel = false;
        var steps = p.TryGetProperty("type", out var t) && t.GetString() == "Sequence"
            ? Property(p, "pretokenizers", source).EnumerateArray().ToList()
            : [p];
        foreach (var step in steps)
        {
            string type = step.TryGetProperty("type", out var st) ? st.GetString() ?? "" : "";
            if (type == "Split" && step.TryGetProperty("pattern", out var pat) && pat.TryGetProperty("Regex", out var rx))
            {
                pattern = rx.GetString();
            }
            else if (type == "ByteLevel")
            {
                byteLevel = true;
                if ((step.TryGetProperty("add_prefix_space", out var aps) && aps.GetBoolean())
                    || (pattern is null && step.TryGetProperty("use_regex", out var ur) && ur.GetBoolean()))
                {
                    throw new BadInputException(source, "ByteLevel pre-tokenizer with add_prefix_space or its own regex is not supported (Qwen2 layout only)");
                }
            }
            else
            {
                throw new BadInputException(source, $"pre-tokenizer step '{type}' is not supported (Qwen2 layout: Split + ByteLevel)");
            }
        }

        if (pattern != QwenPreTokenizer.Pattern || !byteLevel)
        {
            throw new BadInputException(source, "pre-tokenizer is not the Qwen2 split regex followed by ByteLevel");
        }
    }

    private static Dictionary<string, int> ReadVocab(JsonElement vocabElement, string source)
    {
        if (vocabElement.ValueKind != JsonValueKind.Object)
        {
            throw new BadInputException(source, "vocabulary is not a JSON object of token -> id");
        }

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in vocabElement.EnumerateObject())
        {
            vocab[p.Name] = p.Value.GetInt32();
        }

        return vocab;
    }

    private static (string, string) ParseMerge(JsonElement m, string source, int index)
    {
        if (m.ValueKind == JsonValueKind.String)
        {
            var parts = m.GetString()!.Split(' ');
            if (parts.Length == 2 && parts[0].Length > 0 && parts[1].Length > 0)
            {
                return (parts[0], parts[1]);
            }
        }
        else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2)
        {
            return (m[0].GetString() ?? "", m[1].GetString() ?? "");
        }

        throw new BadInputException(source, $"merge {index} is neither \"a b\" nor [\"a\", \"b\"]");
    }

    private static JsonElement Property(JsonElement e, string name, string source) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v)
            ? v
            : throw new BadInputException(source, $"malformed tokenizer file: '{name}' is missing");

    private static string OneLine(string s) => s.ReplaceLineEndings(" ");

    /// <summary>GPT-2's reversible map from bytes to printable characters (printable Latin-1 stays, the rest from U+0100).</summary>
    private static char[] BuildByteAlphabet()
    {
        var map = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)(256 + next++);
        }

        return map;
    }
}
