using System.IO.Compression;
using System.Text.Json.Nodes;
using StableLayers.Model.Text;
using StableLayers.Model.Transformer;
using StableLayers.Model.Vae;
using StableLayers.Model.Weights;
using StableLayers.TestSupport;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

/// <summary>
/// Writes a tiny random model in the released Qwen-Image-Layered folder layout (diffusers' QwenImageLayeredPipeline:
/// model_index.json with [library, class] pairs, transformer/, vae/, text_encoder/ as a transformers Qwen2.5-VL
/// checkpoint in shards with vision-tower and lm_head tensors, tokenizer/, scheduler/). The text encoder has the
/// golden tiny shape (64 wide) and the real tokenizer's vocabulary; the transformer's joint_attention_dim is 64.
/// Shared with the CLI tests (linked source).
/// </summary>
internal static class ReleasedLayoutFolder
{
    public const int TextDim = 64;

    public static void Write(string dir, int seed = 5)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "model_index.json"), """
            {
              "_class_name": "QwenImageLayeredPipeline",
              "_diffusers_version": "0.36.0",
              "processor": ["transformers", "Qwen2VLProcessor"],
              "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
              "text_encoder": ["transformers", "Qwen2_5_VLForConditionalGeneration"],
              "tokenizer": ["transformers", "Qwen2Tokenizer"],
              "transformer": ["diffusers", "QwenImageTransformer2DModel"],
              "vae": ["diffusers", "AutoencoderKLQwenImage"]
            }
            """);
        manual_seed(seed);
        var tc = TransformerConfig.Tiny(layers: 1, heads: 2, headDim: 16, textDim: TextDim, inChannels: 16, outChannels: 4);
        using (var transformer = new QwenImageTransformer2DModel(tc))
        {
            DiffusersCheckpoint.Save(transformer, Path.Combine(dir, "transformer"), tc, ScalarType.Float32);
        }

        using (var vae = new AutoencoderKLQwenImage(VaeConfig.Tiny(baseDim: 4, zDim: 4, dimMult: [1, 1, 1, 1])))
        {
            DiffusersCheckpoint.Save(vae, Path.Combine(dir, "vae"), vae.Config, ScalarType.Float32);
        }

        string tokDir = Path.Combine(dir, "tokenizer");
        Directory.CreateDirectory(tokDir);
        string golden = TestData.InRepo("tests/golden/qwen-tokenizer");
        using (var gz = new GZipStream(File.OpenRead(Path.Combine(golden, "tokenizer.json.gz")), CompressionMode.Decompress))
        using (var outFile = File.Create(Path.Combine(tokDir, QwenTokenizer.TokenizerJsonName)))
        {
            gz.CopyTo(outFile);
        }

        File.Copy(Path.Combine(golden, QwenTokenizer.ConfigName), Path.Combine(tokDir, QwenTokenizer.ConfigName));
        int vocab = QwenTokenizer.Load(tokDir).VocabSize;

        string textDir = Path.Combine(dir, "text_encoder");
        Directory.CreateDirectory(textDir);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(TestData.Qwen25VlTextGolden, "config.json")))!;
        config["vocab_size"] = vocab;
        config["text_config"]!["vocab_size"] = vocab;
        File.WriteAllText(Path.Combine(textDir, "config.json"), config.ToJsonString());
        using (var encoder = new Qwen25VlTextEncoder(Qwen25VlTextConfig.Load(Path.Combine(textDir, "config.json")), CPU))
        {
            var tensors = encoder.state_dict().Select(kv => new KeyValuePair<string, Tensor>("model." + kv.Key, kv.Value))
                .Append(new("visual.patch_embed.proj.weight", randn(8, 3, 2, 2)))
                .Append(new("lm_head.weight", randn(4, TextDim)))
                .ToList();
            // 20 MB shards: the 39 MB embedding alone, the rest in a second shard, plus the index.
            SafetensorsCheckpoint.Write(textDir, SafetensorsCheckpoint.TransformersBaseName, tensors, ScalarType.Float32, 20_000_000);
        }

        Directory.CreateDirectory(Path.Combine(dir, "scheduler"));
        File.WriteAllText(Path.Combine(dir, "scheduler", "scheduler_config.json"), """{"_class_name": "FlowMatchEulerDiscreteScheduler"}""");
    }
}
