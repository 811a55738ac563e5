using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.Model;
using StableLayers.Model.Lora;
using StableLayers.Model.Text;
using StableLayers.Model.Transformer;
using StableLayers.Model.Vae;
using StableLayers.TestSupport;
using static StableLayers.Cli.Tests.InProcessCli;

namespace StableLayers.Cli.Tests;

public class DecomposeCliTests
{
    private static string WriteRandomModel(string dir)
    {
        var config = new LayeredModelConfig
        {
            Name = "random",
            Resolution = 32,
            Transformer = TransformerConfig.Tiny(layers: 1, heads: 2, headDim: 16, textDim: 16, inChannels: 16, outChannels: 4),
            Vae = VaeConfig.Tiny(baseDim: 8, zDim: 4, dimMult: [1, 2]),
            TextEncoder = new TinyTextEncoderConfig { HiddenSize = 16, NumHeads = 2, NumLayers = 1 },
        };
        using var model = LayeredModel.Create(config, WordTokenizer.Build(["a red circle"]), seed: 1);
        model.Save(dir);
        return dir;
    }

    [Fact]
    public void DecomposesAFolderOfImagesIntoEveryFormatAndReportsBadImages()
    {
        using var tmp = new TempDir();
        string model = WriteRandomModel(tmp.File("model"));
        var images = tmp.File("images");
        Directory.CreateDirectory(images);
        var img = new RgbaImage(40, 24);
        new Random(2).NextBytes(img.Pixels);
        PngCodec.Write(Path.Combine(images, "a.png"), img);
        File.WriteAllText(Path.Combine(images, "broken.png"), "not an image");
        var (code, stdout, err) = Run("decompose", images, "--layers", "3", "--steps", "2", "--model", model, "--out", tmp.File("out"), "--format", "folder,psd,ora");
        Assert.Equal(2, code);
        Assert.Contains("broken.png", err);
        Assert.Contains("a.png: 3 layers", stdout);
        var stack = LayeredFolder.Read(tmp.File("out/a"));
        Assert.Equal(3, stack.Count);
        Assert.Equal(40, stack.Width);
        Assert.True(File.Exists(tmp.File("out/a/input.png")));
        Assert.Equal(3, LayeredFile.Read(tmp.File("out/a.psd")).Count);
        Assert.Equal(3, LayeredFile.Read(tmp.File("out/a.ora")).Count);
    }

    [Fact]
    public void EachImageGetsItsOwnNoiseAndTheKthImageReproducesAloneWithSeedPlusK()
    {
        using var tmp = new TempDir();
        string model = WriteRandomModel(tmp.File("model"));
        var images = tmp.File("images");
        Directory.CreateDirectory(images);
        var img = new RgbaImage(32, 32);
        new Random(3).NextBytes(img.Pixels);
        PngCodec.Write(Path.Combine(images, "a.png"), img);
        PngCodec.Write(Path.Combine(images, "b.png"), img);
        Assert.Equal(0, Run("decompose", images, "--layers", "3", "--steps", "2", "--seed", "5", "--model", model, "--out", tmp.File("both")).Code);
        Assert.Equal(0, Run("decompose", Path.Combine(images, "b.png"), "--layers", "3", "--steps", "2", "--seed", "6", "--model", model, "--out", tmp.File("alone")).Code);

        byte[] Layer(string dir) => File.ReadAllBytes(Path.Combine(dir, "layer_01.png"));
        Assert.NotEqual(Layer(tmp.File("both/a")), Layer(tmp.File("both/b")));
        Assert.Equal(Layer(tmp.File("alone/b")), Layer(tmp.File("both/b")));

        // Batched: the same seeds per image, so the same layers up to float rounding.
        Assert.Equal(0, Run("decompose", images, "--layers", "3", "--steps", "2", "--seed", "5", "--batch-size", "2", "--model", model, "--out", tmp.File("batched")).Code);
        foreach (var name in new[] { "a", "b" })
        {
            var one = LayeredFolder.Read(tmp.File($"both/{name}"));
            var two = LayeredFolder.Read(tmp.File($"batched/{name}"));
            for (int k = 0; k < one.Count; k++)
            {
                Assert.True(one[k].Pixels.Zip(two[k].Pixels).All(p => Math.Abs(p.First - p.Second) <= 2), $"{name} layer {k}");
            }
        }

        Assert.Equal(2, Run("decompose", images, "--batch-size", "0", "--model", model, "--out", tmp.File("bad")).Code);
    }

    [Fact]
    public void DecomposesALayeredDatasetKeepingNamesAndLayerCountsThenEvaluates()
    {
        using var tmp = new TempDir();
        string model = WriteRandomModel(tmp.File("model"));
        Assert.Equal(0, Run("synth", "--count", "3", "--seed", "9", "--size", "32", "--layers", "2-4", "--out", tmp.File("gt")).Code);
        var (code, _, err) = Run("decompose", tmp.File("gt"), "--steps", "2", "--model", model, "--out", tmp.File("pred"));
        Assert.True(code == 0, err);
        foreach (var sample in Directory.GetDirectories(tmp.File("gt")))
        {
            var gt = LayeredFolder.Read(sample);
            var pred = LayeredFolder.Read(Path.Combine(tmp.File("pred"), Path.GetFileName(sample)));
            Assert.Equal(gt.Count, pred.Count);
        }

        var eval = Run("eval", "--pred", tmp.File("pred"), "--gt", tmp.File("gt"), "--out", tmp.File("eval"));
        Assert.Equal(0, eval.Code);
        Assert.Contains("evaluated 3 samples (0 failed)", eval.Out);
    }

    [Fact]
    public void LoraIsMergedBeforeSamplingAndBadLoraFilesAreBadInput()
    {
        using var tmp = new TempDir();
        string model = WriteRandomModel(tmp.File("model"));
        using (var loaded = LayeredModel.Load(model))
        using (var adapters = LoraAdapters.Inject(loaded.Transformer, new LoraConfig { Rank = 4, Alpha = 4 }, seed: 1))
        {
            adapters.Save(tmp.File("zero.safetensors"));
            var g = new TorchSharp.torch.Generator(seed: 7);
            using var noGrad = TorchSharp.torch.no_grad();
            foreach (var l in adapters.Layers)
            {
                using var scope = TorchSharp.torch.NewDisposeScope();
                l.B.copy_(TorchSharp.torch.randn(l.B.shape, generator: g));
            }

            adapters.Save(tmp.File("lora.safetensors"));
        }

        PngCodec.Write(tmp.File("x.png"), RgbaImage.Filled(16, 16, 200, 40, 40, 255));
        string[] Decompose(string name, params string[] extra)
        {
            var (code, stdout, err) = Run(["decompose", tmp.File("x.png"), "--layers", "2", "--steps", "2", "--model", model, "--out", tmp.File(name), .. extra]);
            Assert.True(code == 0, err);
            if (extra.Length > 0)
            {
                Assert.Contains("merged LoRA", stdout);
                Assert.Contains("rank 4, alpha 4", stdout);
            }

            return [.. LayeredFolder.Read(tmp.File(name + "/x")).Layers.Select(l => Convert.ToBase64String(l.Image.Pixels))];
        }

        var plain = Decompose("plain");
        Assert.Equal(plain, Decompose("zero", "--lora", tmp.File("zero.safetensors")));
        Assert.NotEqual(plain, Decompose("lora", "--lora", tmp.File("lora.safetensors")));

        var (bad, _, err) = Run("decompose", tmp.File("x.png"), "--model", model, "--out", tmp.File("o"), "--lora", tmp.File("missing.safetensors"));
        Assert.Equal(2, bad);
        Assert.Contains("missing.safetensors", err);
    }

    [Fact]
    public void BadOptionsAreBadInput()
    {
        using var tmp = new TempDir();
        Assert.Equal(2, Run("decompose", tmp.File("missing.png"), "--out", tmp.File("o")).Code);
        Assert.Equal(2, Run("decompose", tmp.Path, "--out", tmp.File("o"), "--format", "tiff").Code);
        Assert.Equal(2, Run("decompose", tmp.Path, "--out", tmp.File("o"), "--layers", "0").Code);
        PngCodec.Write(tmp.File("x.png"), RgbaImage.Filled(8, 8, 1, 2, 3, 255));
        var (code, _, err) = Run("decompose", tmp.File("x.png"), "--out", tmp.File("o"), "--model", tmp.File("nomodel"));
        Assert.Equal(2, code);
        Assert.Contains("nomodel", err);
    }

    [Fact]
    public void PretrainRejectsPresetWithoutPretrainSection()
    {
        using var tmp = new TempDir();
        var (code, _, err) = Run("pretrain", "--config", Path.Combine(TestData.RepoRoot, "configs", "qwen-image-layered.json"), "--out", tmp.File("m"));
        Assert.Equal(2, code);
        Assert.Contains("pretrain", err);
    }
}
