using System.IO.Compression;
using StableLayers.Core;
using StableLayers.Model.Text;
using StableLayers.Model.Transformer;
using StableLayers.TestSupport;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

/// <summary>
/// The layered pipeline's prompt path on the real Qwen-family tokenizer and a tiny random Qwen2.5-VL (the golden
/// model's shape, with the tokenizer's vocabulary so that real token ids fit).
/// </summary>
public sealed class QwenPromptEncoderTests
{
    private static readonly Lazy<QwenTokenizer> Tokenizer = new(() =>
    {
        string dir = TestData.InRepo("tests/golden/qwen-tokenizer");
        using var gz = new GZipStream(File.OpenRead(Path.Combine(dir, "tokenizer.json.gz")), CompressionMode.Decompress);
        using var config = File.OpenRead(Path.Combine(dir, QwenTokenizer.ConfigName));
        return QwenTokenizer.FromTokenizerJson(gz, "tokenizer.json", config, QwenTokenizer.ConfigName);
    });

    internal static QwenTokenizer RealTokenizer => Tokenizer.Value;

    /// <summary>The golden tiny config (64 wide, 2 layers, GQA 4/2) with the tokenizer's vocabulary, random weights.</summary>
    internal static Qwen25VlTextEncoder TinyEncoder(int seed = 7)
    {
        var config = Qwen25VlTextConfig.Load(Path.Combine(TestData.Qwen25VlTextGolden, "config.json")) with { VocabSize = RealTokenizer.VocabSize };
        manual_seed(seed);
        return new Qwen25VlTextEncoder(config, CPU);
    }

    [Fact]
    public void Template_prefix_is_the_34_dropped_tokens_and_the_prompt_follows()
    {
        var t = RealTokenizer;
        var prefix = t.Encode(QwenPromptEncoder.TemplatePrefix);
        Assert.Equal(QwenPromptEncoder.DropTokens, prefix.Length);
        Assert.Equal(t.TokenId("<|im_start|>"), prefix[0]);
        using var enc = new QwenPromptEncoder(t, TinyEncoder());
        var ids = enc.TemplateIds("a red cat");
        Assert.Equal(prefix, ids[..34]);
        Assert.Equal(t.Encode("a red cat"), ids[34..^5]);
        Assert.Equal(t.Encode(QwenPromptEncoder.TemplateSuffix), ids[^5..]);
        Assert.Equal(t.TokenId("<|im_end|>"), ids[^5]);
    }

    [Fact]
    public void Embeddings_are_the_last_hidden_state_after_the_34_dropped_tokens()
    {
        using var enc = new QwenPromptEncoder(RealTokenizer, TinyEncoder());
        var ids = enc.TemplateIds("two layers: a sky and a tree");
        using var scope = NewDisposeScope();
        using var reference = TinyEncoder();
        var full = reference.call(tensor(ids.Select(i => (long)i).ToArray(), [1, ids.Length]), ones(1, ids.Length, dtype: ScalarType.Int64));
        var e = enc.Encode(["two layers: a sky and a tree"]);
        Assert.Equal([1, ids.Length - 34, 64], e.Embeddings.shape);
        Assert.True(e.Mask.all().item<bool>());
        Assert.Equal(0.0, (e.Embeddings[0] - full[0, 34..]).abs().max().item<float>(), 6);
    }

    [Fact]
    public void Padded_batch_equals_each_prompt_alone_and_masks_mark_real_tokens()
    {
        string[] prompts = ["a cat", "a long prompt about a poster with a title, a photo and three lines of small text", " "];
        using var batch = new QwenPromptEncoder(RealTokenizer, TinyEncoder());
        using var scope = NewDisposeScope();
        var b = batch.Encode(prompts);
        int[] lengths = prompts.Select(p => batch.TemplateIds(p).Length - 34).ToArray();
        Assert.Equal(lengths.Max(), (int)b.Embeddings.shape[1]);
        for (int i = 0; i < prompts.Length; i++)
        {
            using var alone = new QwenPromptEncoder(RealTokenizer, TinyEncoder());
            var a = alone.Encode([prompts[i]]);
            Assert.Equal(lengths[i], (int)a.Embeddings.shape[1]);
            Assert.Equal(lengths[i], b.Mask[i].sum().item<long>());
            Assert.True(b.Mask[i, ..lengths[i]].all().item<bool>());
            Assert.True((b.Embeddings[i, ..lengths[i]] - a.Embeddings[0]).abs().max().item<float>() < 1e-5f);
            Assert.Equal(0f, b.Embeddings[i, lengths[i]..].abs().sum().item<float>());
        }
    }

    [Fact]
    public void Each_prompt_is_encoded_once_and_survives_releasing_the_encoder()
    {
        using var enc = new QwenPromptEncoder(RealTokenizer, TinyEncoder());
        using var scope = NewDisposeScope();
        var first = enc.Encode(["a cat", " ", "a cat"]);
        Assert.Equal(2, enc.EncodedCount);
        Assert.Equal(0f, (first.Embeddings[0] - first.Embeddings[2]).abs().max().item<float>());
        enc.ReleaseEncoder();
        Assert.False(enc.HasEncoder);
        var again = enc.Encode(["a cat"]);
        Assert.Equal(2, enc.EncodedCount);
        Assert.Equal(0f, (again.Embeddings[0] - first.Embeddings[0, ..(int)again.Embeddings.shape[1]]).abs().max().item<float>());
        Assert.Throws<InvalidOperationException>(() => enc.Encode(["a dog"]));
    }

    [Fact]
    public void Prompts_over_1024_tokens_are_cut_as_the_reference_or_rejected()
    {
        string longPrompt = string.Concat(Enumerable.Repeat("cat ", 1100));
        using var scope = NewDisposeScope();
        using (var cut = new QwenPromptEncoder(RealTokenizer, TinyEncoder()))
        {
            var e = cut.Encode([longPrompt]);
            Assert.Equal(QwenPromptEncoder.MaxSequenceLength, (int)e.Embeddings.shape[1]);
            Assert.True(e.Embeddings.isfinite().all().item<bool>());
        }

        using var strict = new QwenPromptEncoder(RealTokenizer, TinyEncoder(), rejectOverLimit: true);
        var ex = Assert.Throws<BadInputException>(() => strict.Encode([longPrompt]));
        Assert.Contains("1024", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Fact]
    public void A_tokenizer_larger_than_the_encoder_vocabulary_is_bad_input()
    {
        var config = Qwen25VlTextConfig.Load(Path.Combine(TestData.Qwen25VlTextGolden, "config.json"));
        using var small = new Qwen25VlTextEncoder(config, CPU);
        Assert.Throws<BadInputException>(() => new QwenPromptEncoder(RealTokenizer, small));
    }

    [Fact]
    public void Tokenizer_encoder_embeddings_transformer_end_to_end_is_finite()
    {
        using var enc = new QwenPromptEncoder(RealTokenizer, TinyEncoder());
        var config = TransformerConfig.Tiny(layers: 1, heads: 2, headDim: 16, textDim: enc.Dim);
        manual_seed(3);
        using var model = new QwenImageTransformer2DModel(config);
        using var scope = NewDisposeScope();
        var p = enc.Encode(["a poster with a title", " "]);
        var frames = FrameShape.Layered(2, 4, 4);
        long tokens = frames.Sum(f => (long)f.TokenCount);
        var y = model.forward(randn(2, tokens, config.InChannels), p.Embeddings, p.Mask, rand(2), frames);
        Assert.Equal(2, y.shape[0]);
        Assert.True(y.isfinite().all().item<bool>());
    }
}

public sealed class ReleasedLayoutLoadTests
{
    [Fact]
    public void A_released_layout_folder_loads_with_the_qwen_prompt_path_end_to_end()
    {
        using var tmp = new TempDir();
        ReleasedLayoutFolder.Write(tmp.Path);
        using var model = LayeredModel.Load(tmp.Path, ComputeDevice.Cpu);
        var prompts = Assert.IsType<QwenPromptEncoder>(model.Prompts);
        Assert.Equal(ReleasedLayoutFolder.TextDim, model.Config.Transformer.JointAttentionDim);
        Assert.Null(model.Config.TextEncoder);
        Assert.Equal(640, model.Config.Resolution);

        // The loaded encoder's output equals the written encoder's: the weights went through the key mapping.
        using var scope = NewDisposeScope();
        var e = prompts.Encode(["a poster", " "]);
        using (var reference = new Qwen25VlTextEncoder(Qwen25VlTextConfig.Load(Path.Combine(tmp.Path, "text_encoder", "config.json")), CPU))
        {
            var loadedState = Weights.SafetensorsCheckpoint.Open(Path.Combine(tmp.Path, "text_encoder"), "model");
            using (loadedState)
            {
                loadedState.LoadInto(reference, new Weights.LoadOptions { KeyMap = Qwen25VlTextEncoderLoader.MapKey });
            }

            using var alone = new QwenPromptEncoder(prompts.Tokenizer, reference);
            var want = alone.Encode(["a poster", " "]);
            Assert.True((want.Embeddings - e.Embeddings).abs().max().item<float>() < 1e-6f);
        }

        var frames = FrameShape.Layered(2, 4, 4);
        long tokens = frames.Sum(f => (long)f.TokenCount);
        var y = model.Transformer.forward(randn(2, tokens, model.Config.Transformer.InChannels), e.Embeddings, e.Mask, rand(2), frames);
        Assert.True(y.isfinite().all().item<bool>());
    }

    [Fact]
    public void Broken_tokenizer_or_disagreeing_shards_in_a_released_folder_are_bad_input()
    {
        using var tmp = new TempDir();
        ReleasedLayoutFolder.Write(tmp.Path);
        string index = Path.Combine(tmp.Path, "text_encoder", "model.safetensors.index.json");
        string good = File.ReadAllText(index);
        File.WriteAllText(index, good.Replace("\"model.norm.weight\": \"model-00002-of-00002.safetensors\"", "\"model.norm.weight\": \"model-00001-of-00002.safetensors\"", StringComparison.Ordinal));
        Assert.NotEqual(good, File.ReadAllText(index));
        var ex = Assert.Throws<BadInputException>(() => LayeredModel.Load(tmp.Path));
        Assert.Contains("model.norm.weight", ex.Message, StringComparison.Ordinal);
        File.WriteAllText(index, good);

        string tok = Path.Combine(tmp.Path, "tokenizer", "tokenizer.json");
        File.WriteAllText(tok, "{\"model\": ");
        ex = Assert.Throws<BadInputException>(() => LayeredModel.Load(tmp.Path));
        Assert.Contains("tokenizer.json", ex.Message, StringComparison.Ordinal);
        File.Delete(tok);
        ex = Assert.Throws<BadInputException>(() => LayeredModel.Load(tmp.Path));
        Assert.Contains("tokenizer", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', ex.Message);
    }
}

public sealed class CheckpointKeyMapTests
{
    [Fact]
    public void Key_map_renames_skips_and_rejects_two_copies_of_one_tensor()
    {
        using var tmp = new TempDir();
        using var scope = NewDisposeScope();
        using var module = TorchSharp.torch.nn.Linear(3, 2);
        var w = randn(2, 3);
        var b = randn(2);
        Weights.SafetensorsWriter.WriteFile(tmp.File("model.safetensors"),
            [new("inner.weight", w), new("inner.bias", b), new("skip.me", randn(5))]);
        static string? Map(string k) => k.StartsWith("skip.", StringComparison.Ordinal) ? null : k["inner.".Length..];
        using (var ckpt = Weights.SafetensorsCheckpoint.Open(tmp.Path, "model"))
        {
            var report = ckpt.LoadInto(module, new Weights.LoadOptions { KeyMap = Map });
            Assert.True(report.IsExact);
            Assert.Empty(report.Unexpected);
        }

        Assert.True(module.weight!.eq(w).all().item<bool>());
        Assert.True(module.bias!.eq(b).all().item<bool>());

        Weights.SafetensorsWriter.WriteFile(tmp.File("model.safetensors"),
            [new("inner.weight", w), new("inner.bias", b), new("other.weight", w)]);
        using var twice = Weights.SafetensorsCheckpoint.Open(tmp.Path, "model");
        var ex = Assert.Throws<BadInputException>(() => twice.LoadInto(module, new Weights.LoadOptions { KeyMap = k => k[(k.IndexOf('.', StringComparison.Ordinal) + 1)..] }));
        Assert.Contains("second copy", ex.Message, StringComparison.Ordinal);
    }
}
