using System.Buffers.Binary;
using System.Text.Json;
using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.Model.Tests;
using StableLayers.TestSupport;
using static StableLayers.Cli.Tests.InProcessCli;

namespace StableLayers.Cli.Tests;

/// <summary>train on a tiny random model in the released folder layout: the prompt encoded once, bf16 base weights, float32 adapters.</summary>
public sealed class ReleasedTrainCliTests
{
    private static string WriteConfig(string dir, string model, string dtype, string prompt = "a poster")
    {
        string path = Path.Combine(dir, $"released-{dtype}.toml");
        File.WriteAllText(path, $"""
            steps = 1
            threads = 1
            [model]
            base = "{model}"
            dtype = "{dtype}"
            [data]
            heldout_count = 0
            [sampling]
            group_size = 2
            images_per_step = 1
            steps = 2
            sde_window = 1
            min_layers = 2
            max_layers = 2
            prompt = "{prompt}"
            [grpo]
            minibatches = 1
            [run]
            grid_every = 0
            """);
        return path;
    }

    /// <summary>The dtype of every tensor in a safetensors file, from its JSON header.</summary>
    private static HashSet<string> SafetensorsDTypes(string path)
    {
        using var f = File.OpenRead(path);
        var len = new byte[8];
        f.ReadExactly(len);
        var header = new byte[BinaryPrimitives.ReadInt64LittleEndian(len)];
        f.ReadExactly(header);
        using var doc = JsonDocument.Parse(header);
        return doc.RootElement.EnumerateObject().Where(p => p.Name != "__metadata__").Select(p => p.Value.GetProperty("dtype").GetString()!).ToHashSet();
    }

    [Fact]
    public void Trains_the_released_layout_in_bf16_with_the_prompt_encoded_once()
    {
        using var tmp = new TempDir();
        string model = tmp.File("model");
        ReleasedLayoutFolder.Write(model);
        Directory.CreateDirectory(tmp.File("images"));
        PngCodec.Write(tmp.File("images/a.png"), TestImages.Noise(48, 40, 4));

        string run = tmp.File("run");
        var (code, stdout, err) = Run("train", "--config", WriteConfig(tmp.Path, model, "bfloat16"), "--run-dir", run, "--images", tmp.File("images"), "--device", "cpu");
        Assert.True(code == 0, err);
        Assert.Matches("prompt \"a poster\" encoded once \\([0-9]+ tokens\\); text encoder released", stdout);
        Assert.Contains("base weights BFloat16; LoRA adapters and AdamW state Float32", stdout, StringComparison.Ordinal);
        Assert.Contains("training done: 1 steps", stdout, StringComparison.Ordinal);
        Assert.Equal(["F32"], SafetensorsDTypes(Path.Combine(run, "lora.safetensors")));

        // The adapter trained on the bf16 base decomposes with the released model.
        (code, _, err) = Run("decompose", tmp.File("images/a.png"), "--layers", "1", "--steps", "1", "--model", model, "--prompt", "a poster",
            "--lora", Path.Combine(run, "lora.safetensors"), "--out", tmp.File("dec"), "--device", "cpu");
        Assert.True(code == 0, err);
    }

    [Fact]
    public void Bad_dtypes_and_over_long_prompts_are_one_line_exit_2()
    {
        using var tmp = new TempDir();
        string model = tmp.File("model");
        ReleasedLayoutFolder.Write(model);

        void AssertBad(string contains, string config)
        {
            var (code, _, err) = Run("train", "--config", config, "--run-dir", tmp.File("run"), "--device", "cpu");
            Assert.Equal(2, code);
            Assert.StartsWith("error: ", err, StringComparison.Ordinal);
            Assert.Contains(contains, err, StringComparison.Ordinal);
            Assert.Single(err.TrimEnd().Split('\n'));
        }

        AssertBad("model.dtype 'int8' is not one of float32, bfloat16, float16", WriteConfig(tmp.Path, model, "int8"));
        AssertBad("model.dtype", WriteConfig(tmp.Path, model, "float16"));
        AssertBad("the limit is 1024", WriteConfig(tmp.Path, model, "float32", string.Concat(Enumerable.Repeat("cat ", 1100))));
    }
}
