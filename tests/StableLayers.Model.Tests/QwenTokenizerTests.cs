using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using StableLayers.Core;
using StableLayers.Model.Text;
using StableLayers.TestSupport;

namespace StableLayers.Model.Tests;

/// <summary>
/// The Qwen2-family tokenizer against transformers.js (make_tokenizer_golden.mjs) on the real Qwen3 tokenizer.json:
/// same pre-tokenizer regex, NFC, byte-level BPE and added tokens as Qwen2.5-VL's.
/// </summary>
public sealed class QwenTokenizerTests
{
    private static readonly Lazy<QwenTokenizer> Real = new(() =>
    {
        using var gz = new GZipStream(File.OpenRead(Path.Combine(Dir, "tokenizer.json.gz")), CompressionMode.Decompress);
        using var config = File.OpenRead(Path.Combine(Dir, QwenTokenizer.ConfigName));
        return QwenTokenizer.FromTokenizerJson(gz, "tokenizer.json", config, QwenTokenizer.ConfigName);
    });

    private static string Dir => TestData.InRepo("tests/golden/qwen-tokenizer");

    private static List<(string Text, int[] Ids)> Cases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Dir, "tokenizer_golden.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray()
            .Select(c => (c.GetProperty("text").GetString()!, c.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()).ToArray()))
            .ToList();
    }

    [Fact]
    public void Ids_match_transformers_js_on_every_golden_string()
    {
        var cases = Cases();
        Assert.True(cases.Count >= 1000, $"only {cases.Count} golden strings");
        var failures = new List<string>();
        foreach (var (text, ids) in cases)
        {
            var got = Real.Value.Encode(text);
            if (!got.SequenceEqual(ids))
            {
                failures.Add($"{JsonSerializer.Serialize(text[..Math.Min(60, text.Length)])}: expected [{string.Join(",", ids.Take(12))}], got [{string.Join(",", got.Take(12))}]");
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {cases.Count} strings differ:\n" + string.Join("\n", failures.Take(10)));
    }

    [Fact]
    public void Decode_gives_back_the_normalised_text()
    {
        foreach (var (text, ids) in Cases())
        {
            Assert.Equal(UnicodeNfc.Normalize(text), Real.Value.Decode(ids));
        }
    }

    [Theory]
    [InlineData("e\u0301", "\u00e9")]
    [InlineData("\u212b", "\u00c5")] // singleton decomposition (Angstrom sign)
    [InlineData("\u095a", "\u0917\u093c")] // composition exclusion stays decomposed
    [InlineData("a\u0323\u0302", "\u1ead")] // composed in two steps
    [InlineData("a\u0302\u0323", "\u1ead")] // reordered by combining class first
    [InlineData("\u1100\u1161\u11a8", "\uac01")] // Hangul jamo compose algorithmically
    [InlineData("\ud835\udc00\u0301", "\ud835\udc00\u0301")]
    public void Nfc_composes_as_unicode_defines(string input, string expected) => Assert.Equal(expected, UnicodeNfc.Normalize(input));

    [Fact]
    public void Special_tokens_are_split_before_bpe()
    {
        var t = Real.Value;
        Assert.Equal(151644, t.TokenId("<|im_start|>"));
        Assert.Equal(151645, t.TokenId("<|im_end|>"));
        Assert.Equal(151643, t.TokenId("<|endoftext|>"));
        Assert.Equal(151652, t.TokenId("<|vision_start|>"));
        var ids = t.Encode("<|im_start|>user\nhi<|im_end|>");
        Assert.Equal(151644, ids[0]);
        Assert.Equal(151645, ids[^1]);
        // A near miss is ordinary text.
        Assert.DoesNotContain(151644, t.Encode("<|im_start |>"));
    }

    [Fact]
    public void Longest_added_token_wins_where_two_start_at_the_same_place()
    {
        JsonNode root;
        using (var gz = new GZipStream(File.OpenRead(Path.Combine(Dir, "tokenizer.json.gz")), CompressionMode.Decompress))
        {
            root = JsonNode.Parse(gz)!;
        }

        root["added_tokens"]!.AsArray().Add(new JsonObject { ["id"] = 151700, ["content"] = "<|im_start|>sys", ["special"] = true });
        using var s = new MemoryStream(Encoding.UTF8.GetBytes(root.ToJsonString()));
        var t = QwenTokenizer.FromTokenizerJson(s, "tokenizer.json");
        Assert.Equal([151700, 198], t.Encode("<|im_start|>sys\n"));
        Assert.Equal(151644, t.Encode("<|im_start|>user")[0]);
    }

    [Fact]
    public void Vocab_and_merges_folder_gives_the_same_ids_as_tokenizer_json()
    {
        using var tmp = new TempDir();
        JsonNode root;
        using (var gz = new GZipStream(File.OpenRead(Path.Combine(Dir, "tokenizer.json.gz")), CompressionMode.Decompress))
        {
            root = JsonNode.Parse(gz)!;
        }

        File.WriteAllText(tmp.File("vocab.json"), root["model"]!["vocab"]!.ToJsonString());
        var merges = new StringBuilder("#version: 0.2\n");
        foreach (var m in root["model"]!["merges"]!.AsArray())
        {
            merges.Append(m![0]!.GetValue<string>()).Append(' ').Append(m[1]!.GetValue<string>()).Append('\n');
        }

        File.WriteAllText(tmp.File("merges.txt"), merges.ToString());
        File.Copy(Path.Combine(Dir, QwenTokenizer.ConfigName), tmp.File(QwenTokenizer.ConfigName));
        var t = QwenTokenizer.Load(tmp.Path);
        foreach (var (text, ids) in Cases().Where((_, i) => i % 5 == 0))
        {
            Assert.Equal(ids, t.Encode(text));
        }
    }

    [Fact]
    public void Bad_tokenizer_folders_are_one_line_bad_input_naming_the_file()
    {
        using var tmp = new TempDir();
        AssertBad(() => QwenTokenizer.Load(tmp.File("nope")), "nope");
        AssertBad(() => QwenTokenizer.Load(tmp.Path), tmp.Path);

        File.WriteAllText(tmp.File("tokenizer.json"), "{\"model\": {\"type\": \"BPE\", \"vocab\": {");
        AssertBad(() => QwenTokenizer.Load(tmp.Path), "tokenizer.json");

        File.WriteAllText(tmp.File("tokenizer.json"), "{\"normalizer\": {\"type\": \"NFC\"}, \"model\": {\"type\": \"WordPiece\"}}");
        AssertBad(() => QwenTokenizer.Load(tmp.Path), "tokenizer.json");

        AssertBad(() => Real.Value.TokenId("<|no_such_token|>"), "tokenizer.json");

        // A config that names a special token the tokenizer lacks.
        using var gz = new GZipStream(File.OpenRead(Path.Combine(Dir, "tokenizer.json.gz")), CompressionMode.Decompress);
        using var config = new MemoryStream(Encoding.UTF8.GetBytes("{\"eos_token\": \"<|im_end|>\", \"additional_special_tokens\": [\"<|bogus|>\"]}"));
        AssertBad(() => QwenTokenizer.FromTokenizerJson(gz, "tokenizer.json", config, "tokenizer_config.json"), "tokenizer_config.json");
    }

    private static void AssertBad(Action act, string mustName)
    {
        var ex = Assert.Throws<BadInputException>(act);
        Assert.Contains(mustName, ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', ex.Message);
    }
}
