using System.Text.Json;
using System.Text.Json.Nodes;
using StableLayers.Core;
using StableLayers.Model.Text;
using StableLayers.Model.Weights;
using StableLayers.TestSupport;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

/// <summary>
/// The Qwen2.5-VL language model against transformers' own outputs on a tiny random model
/// (tests/golden/qwen25vl-text-golden, see its README).
/// </summary>
public sealed class Qwen25VlTextEncoderTests
{
    private static readonly string[] Cases = ["b2_rightpad", "b1_nopad", "b1_row1_unpadded"];

    private static string Dir => TestData.Qwen25VlTextGolden;

    /// <summary>max|ref - got| / max|ref|.</summary>
    private static double RelErr(Tensor reference, Tensor got)
    {
        using var scope = NewDisposeScope();
        var r = reference.to(ScalarType.Float64);
        return (r - got.to(ScalarType.Float64)).abs().max().item<double>() / r.abs().max().item<double>();
    }

    [Fact]
    public void Every_hidden_state_matches_transformers_in_float32()
    {
        var (encoder, report) = Qwen25VlTextEncoderLoader.Load(Dir, CPU, ScalarType.Float32);
        using var _ = encoder;
        Assert.NotEmpty(report.IgnoredVision);
        Assert.Single(report.IgnoredLmHead);
        using var golden = SafetensorsFile.Open(Path.Combine(Dir, "golden_outputs.safetensors"));
        foreach (var c in Cases)
        {
            using var scope = NewDisposeScope();
            var ids = golden.Read($"{c}.input_ids");
            var mask = golden.Read($"{c}.attention_mask");
            var o = encoder.ForwardAll(ids, mask);
            Assert.Equal(3, o.HiddenStates.Count);
            for (int i = 0; i < 3; i++)
            {
                double e = RelErr(golden.Read($"{c}.hidden_states.{i}"), o.HiddenStates[i]);
                Console.WriteLine($"float32 {c}.hidden_states.{i}: relative error {e:E2}");
                Assert.True(e < 1e-5, $"{c}.hidden_states.{i}: relative error {e:E2}");
            }

            double pre = RelErr(golden.Read($"{c}.last_layer_output_prenorm"), o.LastLayerPreNorm);
            Assert.True(pre < 1e-5, $"{c}.last_layer_output_prenorm: relative error {pre:E2}");

            // forward() returns hidden_states[-1], the final-normed state.
            double last = RelErr(golden.Read($"{c}.hidden_states.2"), encoder.call(ids, mask));
            Assert.True(last < 1e-5, $"{c} forward: relative error {last:E2}");

            var positions = golden.Read($"{c}.position_ids");
            Assert.True(positions[0].to(ScalarType.Int64).equal(Qwen25VlTextEncoder.PositionIds(mask)).all().item<bool>(), $"{c} position ids differ");
        }
    }

    [Fact]
    public void Bf16_stays_close_to_the_float32_reference()
    {
        var (encoder, _) = Qwen25VlTextEncoderLoader.Load(Dir, CPU, ScalarType.BFloat16);
        using var _ = encoder;
        Assert.Equal(ScalarType.BFloat16, encoder.DType);
        using var golden = SafetensorsFile.Open(Path.Combine(Dir, "golden_outputs.safetensors"));
        using var scope = NewDisposeScope();
        var h = encoder.call(golden.Read("b1_nopad.input_ids"), golden.Read("b1_nopad.attention_mask"));
        Assert.Equal(ScalarType.BFloat16, h.dtype);
        double e = RelErr(golden.Read("b1_nopad.hidden_states.2"), h);
        Console.WriteLine($"bf16 vs float32 reference, b1_nopad hidden_states[-1]: relative error {e:E2}");
        Assert.True(e < 5e-2, $"bf16 relative error {e:E2}");
    }

    [Fact]
    public void Padded_and_unpadded_rows_agree_on_real_tokens()
    {
        var (encoder, _) = Qwen25VlTextEncoderLoader.Load(Dir, CPU, ScalarType.Float32);
        using var _ = encoder;
        using var golden = SafetensorsFile.Open(Path.Combine(Dir, "golden_outputs.safetensors"));
        using var scope = NewDisposeScope();
        var padded = encoder.call(golden.Read("b2_rightpad.input_ids"), golden.Read("b2_rightpad.attention_mask"));
        var alone = encoder.call(golden.Read("b1_row1_unpadded.input_ids"), golden.Read("b1_row1_unpadded.attention_mask"));
        Assert.True(RelErr(alone[0], padded[1].narrow(0, 0, 12)) < 1e-5);

        // Left padding (not in the golden data): padded queries have no real key before them; they must stay finite and
        // the real tokens must equal the unpadded run.
        var ids = cat([zeros(1, 3, ScalarType.Int64), golden.Read("b1_row1_unpadded.input_ids")], 1);
        var mask = cat([zeros(1, 3, ScalarType.Int64), ones(1, 12, ScalarType.Int64)], 1);
        var left = encoder.call(ids, mask);
        Assert.False(left.isnan().any().item<bool>());
        Assert.True(RelErr(alone, left.narrow(1, 3, 12)) < 1e-5);
    }

    [Theory]
    [InlineData("model.language_model.", false)]
    [InlineData("language_model.model.", false)]
    [InlineData("model.", true)]
    public void Key_layouts_of_transformers_versions_and_shards_load_the_same(string prefix, bool sharded)
    {
        using var tmp = new TempDir();
        File.Copy(Path.Combine(Dir, "config.json"), tmp.File("config.json"));
        using (var src = SafetensorsFile.Open(Path.Combine(Dir, "model.safetensors")))
        {
            var tensors = src.Entries.Select(e => new KeyValuePair<string, Tensor>(
                e.Name.StartsWith("model.", StringComparison.Ordinal) ? prefix + e.Name["model.".Length..]
                : e.Name.StartsWith("visual.", StringComparison.Ordinal) ? "model." + e.Name : e.Name, src.Read(e.Name))).ToList();
            if (sharded)
            {
                var map = new JsonObject();
                for (int s = 0; s < 2; s++)
                {
                    string name = $"model-0000{s + 1}-of-00002.safetensors";
                    var part = tensors.Where((_, i) => i % 2 == s).ToList();
                    SafetensorsWriter.WriteFile(tmp.File(name), part);
                    foreach (var kv in part)
                    {
                        map[kv.Key] = name;
                    }
                }

                File.WriteAllText(tmp.File(Qwen25VlTextEncoderLoader.IndexName), new JsonObject { ["weight_map"] = map }.ToJsonString());
            }
            else
            {
                SafetensorsWriter.WriteFile(tmp.File("model.safetensors"), tensors);
            }

            foreach (var kv in tensors)
            {
                kv.Value.Dispose();
            }
        }

        var (encoder, report) = Qwen25VlTextEncoderLoader.Load(tmp.Path, CPU, ScalarType.Float32);
        using var _ = encoder;
        Assert.NotEmpty(report.IgnoredVision);
        using var golden = SafetensorsFile.Open(Path.Combine(Dir, "golden_outputs.safetensors"));
        using var scope = NewDisposeScope();
        var h = encoder.call(golden.Read("b1_nopad.input_ids"), golden.Read("b1_nopad.attention_mask"));
        Assert.True(RelErr(golden.Read("b1_nopad.hidden_states.2"), h) < 1e-5);
    }

    [Fact]
    public void Bad_text_encoder_folders_are_one_line_bad_input()
    {
        using var tmp = new TempDir();
        AssertBad(() => Qwen25VlTextEncoderLoader.Load(tmp.File("nope"), CPU, ScalarType.Float32), "nope");
        AssertBad(() => Qwen25VlTextEncoderLoader.Load(tmp.Path, CPU, ScalarType.Float32), "config.json");
        File.Copy(Path.Combine(Dir, "config.json"), tmp.File("config.json"));
        AssertBad(() => Qwen25VlTextEncoderLoader.Load(tmp.Path, CPU, ScalarType.Float32), "model.safetensors");

        // A checkpoint without one tensor.
        using (var src = SafetensorsFile.Open(Path.Combine(Dir, "model.safetensors")))
        {
            var tensors = src.Entries.Where(e => e.Name != "model.layers.1.self_attn.q_proj.bias")
                .Select(e => new KeyValuePair<string, Tensor>(e.Name, src.Read(e.Name))).ToList();
            SafetensorsWriter.WriteFile(tmp.File("model.safetensors"), tensors);
        }

        AssertBad(() => Qwen25VlTextEncoderLoader.Load(tmp.Path, CPU, ScalarType.Float32), "layers.1.self_attn.q_proj.bias");

        // An index whose weight map disagrees with its shard.
        File.WriteAllText(tmp.File(Qwen25VlTextEncoderLoader.IndexName),
            "{\"weight_map\": {\"model.layers.1.self_attn.q_proj.bias\": \"model.safetensors\"}}");
        AssertBad(() => Qwen25VlTextEncoderLoader.Load(tmp.Path, CPU, ScalarType.Float32), "q_proj.bias");

        File.WriteAllText(tmp.File("config.json"), "{\"hidden_size\": 64,");
        AssertBad(() => Qwen25VlTextEncoderLoader.Load(tmp.Path, CPU, ScalarType.Float32), "config.json");
    }

    [Fact]
    public void Config_reads_top_level_text_config_and_rope_parameters_layouts()
    {
        var golden = Qwen25VlTextConfig.Load(Path.Combine(Dir, "config.json"));
        Assert.Equal(64, golden.HiddenSize);
        Assert.Equal(2, golden.NumKeyValueHeads);
        Assert.Equal(176, golden.IntermediateSize);
        Assert.Equal(1e6, golden.RopeTheta);
        Assert.Equal([2, 3, 3], golden.MropeSection);

        var root = JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "config.json")))!.AsObject();
        var text = root["text_config"]!.AsObject();
        var flat = JsonNode.Parse(root.ToJsonString())!.AsObject();
        flat.Remove("text_config");
        AssertSame(golden, Qwen25VlTextConfig.FromJson(JsonDocument.Parse(flat.ToJsonString()).RootElement, "flat"));

        var nested = new JsonObject { ["tie_word_embeddings"] = false, ["text_config"] = JsonNode.Parse(text.ToJsonString()) };
        var v5 = nested["text_config"]!.AsObject();
        v5.Remove("rope_scaling");
        v5.Remove("rope_theta");
        v5["rope_parameters"] = new JsonObject { ["rope_type"] = "default", ["rope_theta"] = 1e6, ["mrope_section"] = new JsonArray(2, 3, 3) };
        AssertSame(golden, Qwen25VlTextConfig.FromJson(JsonDocument.Parse(nested.ToJsonString()).RootElement, "v5"));
    }

    private static void AssertSame(Qwen25VlTextConfig expected, Qwen25VlTextConfig actual)
    {
        Assert.Equal(expected.MropeSection, actual.MropeSection);
        Assert.Equal(expected with { MropeSection = [] }, actual with { MropeSection = [] });
    }

    [Fact]
    public void Parameter_counts_match_the_module_and_the_published_7b_numbers()
    {
        var tiny = Qwen25VlTextConfig.Load(Path.Combine(Dir, "config.json"));
        using (var m = new Qwen25VlTextEncoder(tiny, CPU))
        {
            Assert.Equal(tiny.ParameterCount(), m.parameters().Sum(p => p.numel()));
        }

        // Qwen2.5-VL-7B's language model is Qwen2.5-7B's architecture: its model card gives 7.61B parameters, 6.53B
        // without the (untied) input and output embeddings. Computed from the config, nothing allocated.
        var full = Qwen25VlTextConfig.Qwen25Vl7B;
        Assert.Equal(128, full.HeadDim);
        Assert.Equal(7_615_616_512, full.ParameterCount(includeLmHead: true));
        Assert.Equal(7_070_619_136, full.ParameterCount());
        long nonEmbedding = full.ParameterCount(includeLmHead: true) - (2L * full.VocabSize * full.HiddenSize);
        Assert.Equal(6.53e9, nonEmbedding, 0.005e9);
    }

    private static void AssertBad(Action act, string mustName)
    {
        var ex = Assert.Throws<BadInputException>(act);
        Assert.Contains(mustName, ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', ex.Message);
    }
}
