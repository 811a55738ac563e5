using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Model.Inference;
using StableLayers.Model.Text;
using StableLayers.TestSupport;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public class BatchedDecomposeTests
{

    [Fact]
    public void ABatchGivesEachImageWhatItGetsAloneInInputOrderWithTrueCfg()
    {
        using var scope = NewDisposeScope();
        using var model = LayeredModel.Create(LayeredModelTests.SmallConfig(), WordTokenizer.Build(["a red circle"]), seed: 3);
        model.Transformer.eval();
        model.Vae.eval();
        ((TinyTextEncoder)model.Prompts).eval();
        var decomposer = new LayeredDecomposer(model);

        // Two images share a bucket and a layer count (one batch of 2 x 2 CFG rows), one has another aspect
        // (another bucket), one another layer count: three groups, results must come back in input order.
        RgbaImage[] inputs = [TestImages.Noise(40, 40, 1), TestImages.Noise(40, 40, 2), TestImages.Noise(64, 24, 3), TestImages.Noise(40, 40, 4)];
        var shared = new DecomposeOptions { Steps = 3, Cfg = 2f, Prompt = "a red circle" };
        DecomposeOptions[] options =
        [
            shared with { Layers = 3, Seed = 11 },
            shared with { Layers = 3, Seed = 12 },
            shared with { Layers = 3, Seed = 13 },
            shared with { Layers = 2, Seed = 14 },
        ];

        var batched = decomposer.Decompose(inputs, options);
        var alone = inputs.Select((image, i) => decomposer.Decompose(image, options[i])).ToArray();
        Assert.Equal(inputs.Length, batched.Count);
        for (int i = 0; i < inputs.Length; i++)
        {
            Assert.Equal(options[i].Layers, batched[i].Count);
            Assert.Equal(inputs[i].Width, batched[i].Width);
            Assert.Equal(inputs[i].Height, batched[i].Height);
            int d = ImageDiff.LayerBytes(batched[i], alone[i]).Max;
            Assert.True(d <= 2, $"image {i}: batched differs from alone by up to {d}/255");
        }

        // The two same-size images decompose very differently, so a mix-up in the batch would have been caught above.
        Assert.True(ImageDiff.LayerBytes(alone[0], alone[1]).Max > 20);
    }

    [Fact]
    public void ABatchMayDifferOnlyInLayersAndSeed()
    {
        using var scope = NewDisposeScope();
        using var model = LayeredModel.Create(LayeredModelTests.SmallConfig(), WordTokenizer.Build(["a red circle"]), seed: 3);
        var decomposer = new LayeredDecomposer(model);
        RgbaImage[] inputs = [TestImages.Noise(32, 32, 1), TestImages.Noise(32, 32, 2)];
        var o = new DecomposeOptions { Steps = 2 };
        Assert.Throws<ArgumentException>(() => decomposer.Decompose(inputs, [o, o with { Steps = 3 }]));
        Assert.Throws<ArgumentException>(() => decomposer.Decompose(inputs, [o]));
    }
}
