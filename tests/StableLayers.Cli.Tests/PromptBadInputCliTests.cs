using System.Text.Json.Nodes;
using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.Model.Tests;
using StableLayers.TestSupport;
using static StableLayers.Cli.Tests.InProcessCli;

namespace StableLayers.Cli.Tests;

/// <summary>Tokenizer files whose special tokens do not match the pipeline's template, on the released layout: one line, exit 2.</summary>
public sealed class PromptBadInputCliTests
{
    [Fact]
    public void Unknown_and_missing_special_tokens_are_one_line_exit_2()
    {
        using var tmp = new TempDir();
        string model = tmp.File("model");
        ReleasedLayoutFolder.Write(model);
        PngCodec.Write(tmp.File("a.png"), new RgbaImage(16, 16));
        string tokDir = Path.Combine(model, "tokenizer");
        string configPath = Path.Combine(tokDir, "tokenizer_config.json");
        string jsonPath = Path.Combine(tokDir, "tokenizer.json");
        string goodConfig = File.ReadAllText(configPath);
        string goodJson = File.ReadAllText(jsonPath);

        void AssertBad(string file, string contains)
        {
            foreach (var args in new[]
            {
                new[] { "decompose", tmp.File("a.png"), "--prompt", "a cat", "--layers", "2", "--steps", "1", "--model", model, "--out", tmp.File("out"), "--device", "cpu" },
                new[] { "encode-prompts", "--model", model, "--prompt", "a cat", "--out", tmp.File("t.safetensors"), "--device", "cpu" },
            })
            {
                var (code, _, err) = Run(args);
                Assert.Equal(2, code);
                Assert.StartsWith("error: ", err, StringComparison.Ordinal);
                Assert.Contains(file, err, StringComparison.Ordinal);
                Assert.Contains(contains, err, StringComparison.Ordinal);
                Assert.Single(err.TrimEnd().Split('\n'));
            }
        }

        // The config names a special token the tokenizer does not have.
        var config = JsonNode.Parse(goodConfig)!;
        config["additional_special_tokens"]!.AsArray().Add("<|bogus|>");
        File.WriteAllText(configPath, config.ToJsonString());
        AssertBad("tokenizer_config.json", "'<|bogus|>'");

        // A tokenizer without the template's <|im_start|>: BPE would spell it out and the 34 dropped tokens would be wrong.
        File.WriteAllText(configPath, "{}");
        var json = JsonNode.Parse(goodJson)!;
        foreach (var t in json["added_tokens"]!.AsArray())
        {
            if (t!["content"]!.GetValue<string>() == "<|im_start|>")
            {
                t["content"] = "<|im_begin|>";
            }
        }

        File.WriteAllText(jsonPath, json.ToJsonString());
        AssertBad("tokenizer.json", "unknown special token '<|im_start|>'");
        Assert.False(File.Exists(tmp.File("t.safetensors")));
    }
}
