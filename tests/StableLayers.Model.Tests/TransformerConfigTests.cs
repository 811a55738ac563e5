using StableLayers.Model.Transformer;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public class TransformerConfigTests
{
    [Fact]
    public void FullConfigHas20Point43BillionParametersAnd339Point8MillionPerBlock()
    {
        var full = TransformerConfig.Full;
        Assert.Equal(20.43, full.ParameterCount() / 1e9, 2);

        var block = full.ParameterShapes().Where(kv => kv.Key.StartsWith("transformer_blocks.0.", StringComparison.Ordinal))
            .Sum(kv => kv.Value.Aggregate(1L, (a, b) => a * b));
        Assert.Equal(339.8, block / 1e6, 1);
    }

    [Fact]
    public void FullConfigNamesMatchDiffusersForTopLevelAndOneBlock()
    {
        // Written from reading diffusers' transformer_qwenimage.py (Attention, FeedForward, TimestepEmbedding, AdaLayerNormContinuous).
        var expected = new List<string>();
        void Linear(string n) => expected.AddRange([n + ".weight", n + ".bias"]);
        Linear("img_in");
        expected.Add("txt_norm.weight");
        Linear("txt_in");
        Linear("time_text_embed.timestep_embedder.linear_1");
        Linear("time_text_embed.timestep_embedder.linear_2");
        expected.Add("time_text_embed.addition_t_embedding.weight");
        const string b = "transformer_blocks.0.";
        Linear(b + "img_mod.1");
        Linear(b + "txt_mod.1");
        foreach (var p in new[] { "to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_out.0", "to_add_out" })
        {
            Linear(b + "attn." + p);
        }

        foreach (var n in new[] { "norm_q", "norm_k", "norm_added_q", "norm_added_k" })
        {
            expected.Add(b + "attn." + n + ".weight");
        }

        Linear(b + "img_mlp.net.0.proj");
        Linear(b + "img_mlp.net.2");
        Linear(b + "txt_mlp.net.0.proj");
        Linear(b + "txt_mlp.net.2");
        Linear("norm_out.linear");
        Linear("proj_out");

        var shapes = TransformerConfig.Full.ParameterShapes();
        var actual = shapes.Keys.Where(k => !k.StartsWith("transformer_blocks.", StringComparison.Ordinal) || k.StartsWith(b, StringComparison.Ordinal));
        Assert.Equal(expected.Order(StringComparer.Ordinal), actual.Order(StringComparer.Ordinal));
        Assert.Equal(expected.Count + (59 * 32), shapes.Count);

        Assert.Equal([18432L, 3072], shapes[b + "img_mod.1.weight"]);
        Assert.Equal([12288L, 3072], shapes[b + "img_mlp.net.0.proj.weight"]);
        Assert.Equal([128L], shapes[b + "attn.norm_added_k.weight"]);
        Assert.Equal([3072L, 256], shapes["time_text_embed.timestep_embedder.linear_1.weight"]);
        Assert.Equal([6144L, 3072], shapes["norm_out.linear.weight"]);
        Assert.Equal([64L, 3072], shapes["proj_out.weight"]);
        Assert.Equal([3072L, 64], shapes["img_in.weight"]);
        Assert.Equal([3072L, 3584], shapes["txt_in.weight"]);
    }

    [Fact]
    public void InstantiatedSmallModelHasExactlyTheAnalyticNamesAndShapes()
    {
        using var scope = NewDisposeScope();
        var config = TransformerConfig.Tiny(layers: 2, heads: 2, headDim: 16);
        using var model = new QwenImageTransformer2DModel(config);
        var actual = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        var expected = config.ParameterShapes();
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, shape) in expected)
        {
            Assert.True(shape.SequenceEqual(actual[name]), $"{name}: expected [{string.Join(",", shape)}], got [{string.Join(",", actual[name])}]");
        }

        Assert.Equal(config.ParameterCount(), model.parameters().Sum(p => p.numel()));
    }

    [Fact]
    public void ConfigReadsDiffusersJsonNames()
    {
        const string json = """
            {"_class_name":"QwenImageTransformer2DModel","_diffusers_version":"0.36.0","attention_head_dim":128,
             "axes_dims_rope":[16,56,56],"guidance_embeds":false,"in_channels":64,"joint_attention_dim":3584,
             "num_attention_heads":24,"num_layers":60,"out_channels":16,"patch_size":2,"use_additional_t_cond":true,
             "use_layer3d_rope":true,"zero_cond_t":false}
            """;
        var config = TransformerConfig.FromJson(json);
        Assert.Equal(TransformerConfig.Full.ParameterCount(), config.ParameterCount());
        Assert.Equal([16, 56, 56], config.AxesDimsRope);
        Assert.True(config.UseLayer3dRope && config.UseAdditionalTCond && !config.ZeroCondT);

        var roundTrip = TransformerConfig.FromJson(TransformerConfig.Tiny().ToJson());
        Assert.Equal(TransformerConfig.Tiny().ParameterCount(), roundTrip.ParameterCount());
        Assert.Contains("\"axes_dims_rope\"", TransformerConfig.Tiny().ToJson(), StringComparison.Ordinal);
    }

    [Fact]
    public void TinyAxesSumToHeadDim()
    {
        foreach (int d in new[] { 8, 16, 32, 128 })
        {
            var c = TransformerConfig.Tiny(headDim: d);
            c.Validate();
            Assert.Equal(d, c.AxesDimsRope.Sum());
        }
    }
}
