using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.Model.Tests;
using StableLayers.Model.Text;
using StableLayers.TestSupport;
using static TorchSharp.torch;
using static StableLayers.Cli.Tests.InProcessCli;

namespace StableLayers.Cli.Tests;

/// <summary>decompose --prompt and encode-prompts on a tiny random model in the released folder layout.</summary>
public sealed class PromptCliTests
{
    [Fact]
    public void Decompose_with_a_prompt_and_encode_prompts_run_on_the_released_layout()
    {
        using var tmp = new TempDir();
        string model = tmp.File("model");
        ReleasedLayoutFolder.Write(model);
        var img = new RgbaImage(40, 24);
        new Random(2).NextBytes(img.Pixels);
        PngCodec.Write(tmp.File("a.png"), img);

        var (code, stdout, err) = Run("decompose", tmp.File("a.png"), "--layers", "2", "--steps", "1", "--cfg", "2", "--prompt", "a red poster",
            "--model", model, "--out", tmp.File("out"), "--device", "cpu");
        Assert.True(code == 0, err);
        Assert.Contains("a.png: 2 layers", stdout, StringComparison.Ordinal);
        Assert.Equal(2, LayeredFolder.Read(tmp.File("out/a")).Count);

        File.WriteAllLines(tmp.File("prompts.txt"), ["a red poster", "", "two layers"]);
        (code, stdout, err) = Run("encode-prompts", "--model", model, "--prompts", tmp.File("prompts.txt"), "--prompt", " ", "--out", tmp.File("table.safetensors"), "--device", "cpu");
        Assert.True(code == 0, err);
        Assert.Contains("3 prompts", stdout, StringComparison.Ordinal);
        var table = new PrecomputedPromptEncoder(tmp.File("table.safetensors"));
        Assert.Equal(ReleasedLayoutFolder.TextDim, table.Dim);
        using var direct = QwenPromptEncoder.Load(Path.Combine(model, "text_encoder"), Path.Combine(model, "tokenizer"), CPU, ScalarType.Float32);
        using var scope = NewDisposeScope();
        var want = direct.Encode(["two layers", " "]);
        var got = table.Encode(["two layers", " "]);
        Assert.Equal(want.Embeddings.shape, got.Embeddings.shape);
        Assert.True(want.Mask.eq(got.Mask).all().item<bool>());
        Assert.True((want.Embeddings - got.Embeddings).abs().max().item<float>() < 1e-6f);
    }

    [Fact]
    public void Long_prompts_missing_tokenizers_and_disagreeing_shards_are_one_line_exit_2()
    {
        using var tmp = new TempDir();
        string model = tmp.File("model");
        ReleasedLayoutFolder.Write(model);
        var img = new RgbaImage(16, 16);
        PngCodec.Write(tmp.File("a.png"), img);
        string longPrompt = string.Concat(Enumerable.Repeat("cat ", 1100));

        void AssertBad(string contains, params string[] args)
        {
            var (code, _, err) = Run(args);
            Assert.Equal(2, code);
            Assert.StartsWith("error: ", err, StringComparison.Ordinal);
            Assert.Contains(contains, err, StringComparison.Ordinal);
            Assert.Single(err.TrimEnd().Split('\n'));
        }

        AssertBad("1024", "decompose", tmp.File("a.png"), "--prompt", longPrompt, "--model", model, "--out", tmp.File("out"), "--device", "cpu");
        AssertBad("1024", "encode-prompts", "--model", model, "--prompt", longPrompt, "--out", tmp.File("t.safetensors"), "--device", "cpu");
        AssertBad("--prompt", "encode-prompts", "--model", model, "--out", tmp.File("t.safetensors"), "--device", "cpu");

        string index = Path.Combine(model, "text_encoder", "model.safetensors.index.json");
        string good = File.ReadAllText(index);
        File.WriteAllText(index, good.Replace("\"model.norm.weight\": \"model-00002-of-00002.safetensors\"", "\"model.norm.weight\": \"model-00001-of-00002.safetensors\"", StringComparison.Ordinal));
        AssertBad("model.norm.weight", "encode-prompts", "--model", model, "--prompt", "a cat", "--out", tmp.File("t.safetensors"), "--device", "cpu");
        AssertBad("model.norm.weight", "decompose", tmp.File("a.png"), "--prompt", "a cat", "--model", model, "--out", tmp.File("out"), "--device", "cpu");
        File.WriteAllText(index, good);

        File.WriteAllText(Path.Combine(model, "tokenizer", "tokenizer.json"), "{\"model\": ");
        AssertBad("tokenizer.json", "encode-prompts", "--model", model, "--prompt", "a cat", "--out", tmp.File("t.safetensors"), "--device", "cpu");
        File.Delete(Path.Combine(model, "tokenizer", "tokenizer.json"));
        AssertBad("tokenizer", "decompose", tmp.File("a.png"), "--prompt", "a cat", "--model", model, "--out", tmp.File("out"), "--device", "cpu");
        Assert.False(File.Exists(tmp.File("t.safetensors")));
    }
}
