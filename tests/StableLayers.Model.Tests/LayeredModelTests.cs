using StableLayers.Core;
using StableLayers.Core.Imaging;
using StableLayers.Model.Inference;
using StableLayers.Model.Text;
using StableLayers.Model.Transformer;
using StableLayers.Model.Vae;
using StableLayers.TestSupport;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public class LayeredModelTests
{
    internal static LayeredModelConfig SmallConfig() => new()
    {
        Name = "test",
        Resolution = 32,
        Transformer = TransformerConfig.Tiny(layers: 1, heads: 2, headDim: 16, textDim: 16, inChannels: 16, outChannels: 4),
        Vae = VaeConfig.Tiny(baseDim: 8, zDim: 4, dimMult: [1, 2]),
        TextEncoder = new TinyTextEncoderConfig { HiddenSize = 16, NumHeads = 2, NumLayers = 1 },
    };

    [Fact]
    public void ShippedConfigFilesLoadAndDescribeTheReleasedArchitecture()
    {
        var full = LayeredModelConfig.Load(Path.Combine(TestData.RepoRoot, "configs", "qwen-image-layered.json"));
        Assert.Equal(20.43e9, full.Transformer.ParameterCount(), 0.005e9);
        Assert.Equal(126.9e6, full.Vae.ParameterCount(), 0.05e6);
        Assert.Equal(16, full.PixelsPerToken);
        var tiny = LayeredModelConfig.Load(Path.Combine(TestData.RepoRoot, "configs", "tiny.json"));
        Assert.NotNull(tiny.Pretrain);
        Assert.Equal(tiny.Transformer.JointAttentionDim, tiny.TextEncoder!.HiddenSize);
        Assert.Equal(0, tiny.Resolution % tiny.PixelsPerToken);
    }

    [Fact]
    public void InconsistentConfigIsBadInputNamingTheFile()
    {
        using var tmp = new TempDir();
        var bad = SmallConfig() with { Transformer = SmallConfig().Transformer with { InChannels = 12 } };
        File.WriteAllText(tmp.File("bad.json"), bad.ToJson());
        var e = Assert.Throws<BadInputException>(() => LayeredModelConfig.Load(tmp.File("bad.json")));
        Assert.Contains("bad.json", e.Message);
        File.WriteAllText(tmp.File("broken.json"), "{ \"name\": ");
        Assert.Throws<BadInputException>(() => LayeredModelConfig.Load(tmp.File("broken.json")));
    }

    [Fact]
    public void SavedModelReloadsStrictlyAndDecomposesIdentically()
    {
        using var scope = NewDisposeScope();
        using var tmp = new TempDir();
        var tokenizer = WordTokenizer.Build(["a red circle over a blue gradient"]);
        using var model = LayeredModel.Create(SmallConfig(), tokenizer, seed: 5);
        model.SetLatentStatistics([0.1, -0.2, 0.3, 0.0], [1.5, 0.5, 1.0, 2.0]);
        model.Save(tmp.Path);
        using var loaded = LayeredModel.Load(tmp.Path);
        Assert.Equal(0.5f, loaded.Vae.Config.LatentsStd[1]);

        var input = new RgbaImage(50, 30);
        new Random(1).NextBytes(input.Pixels);
        var options = new DecomposeOptions { Layers = 3, Steps = 3, Seed = 7, Prompt = "a red circle" };
        model.Transformer.eval();
        model.Vae.eval();
        ((TinyTextEncoder)model.Prompts).eval();
        var a = new LayeredDecomposer(model).Decompose(input, options);
        var b = new LayeredDecomposer(loaded).Decompose(input, options);
        Assert.Equal(3, a.Count);
        Assert.Equal(50, a.Width);
        Assert.Equal(30, a.Height);
        for (int k = 0; k < a.Count; k++)
        {
            Assert.True(a[k].PixelsEqual(b[k]), $"layer {k} differs after reload");
        }

        var c = new LayeredDecomposer(loaded).Decompose(input, options with { Seed = 8 });
        Assert.False(c[1].PixelsEqual(b[1]), "the seed must change the sample");
        var heun = new LayeredDecomposer(loaded).Decompose(input, options with { Sampler = SamplerKind.Heun, Cfg = 2f });
        Assert.Equal(3, heun.Count);
    }

    [Fact]
    public void MissingModelFolderIsBadInput()
    {
        using var tmp = new TempDir();
        var e = Assert.Throws<BadInputException>(() => LayeredModel.Load(tmp.Path));
        Assert.Contains("model_index.json", e.Message);
    }
}
