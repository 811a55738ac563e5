using StableLayers.Core;
using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.TestSupport;

namespace StableLayers.Core.Tests;

public class LayeredFolderTests
{
    public static TheoryData<string> Samples()
    {
        var data = new TheoryData<string>();
        foreach (var s in TestData.RealPsdDevSamples)
        {
            data.Add(Path.GetFileName(s));
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void RealSampleRecompositeMatchesItsCompositePng(string sample)
    {
        var dir = Path.Combine(TestData.RealPsdDev, sample);
        var stack = LayeredFolder.Read(dir, out var manifest);
        Assert.Equal(manifest.Layers.Count, stack.Count);
        Assert.True(stack[0].IsOpaque(), "ground-truth layer 0 is opaque");
        var expected = LayeredFolder.ReadComposite(dir)!;
        Assert.True(ImageDiff.MeanAbs(stack.FlattenOnWhite(), expected) < 1.0 / 255, "recomposite differs from composite.png");
    }

    [Fact]
    public void WriteThenReadIsIdentical()
    {
        var src = LayeredFolder.Read(Path.Combine(TestData.RealPsdDev, "groups"));
        using var tmp = new TempDir();
        LayeredFolder.Write(tmp.Path, src, new LayerSource("test", "MIT"));
        var back = LayeredFolder.Read(tmp.Path, out var manifest);
        Assert.Equal("MIT", manifest.License);
        Assert.Equal(src.Count, back.Count);
        for (int i = 0; i < src.Count; i++)
        {
            Assert.True(src[i].PixelsEqual(back[i]));
            Assert.Equal(src.Layers[i].Name, back.Layers[i].Name);
        }
    }

    [Fact]
    public void MissingLayerFileIsNamed()
    {
        using var tmp = new TempDir();
        LayeredFolder.Write(tmp.Path, new LayerStack(RgbaImage.Filled(4, 4, 1, 1, 1, 255), RgbaImage.Filled(4, 4, 9, 9, 9, 9)));
        File.Delete(tmp.File("layer_01.png"));
        var e = Assert.Throws<BadInputException>(() => LayeredFolder.Read(tmp.Path));
        Assert.Contains("layer_01.png", e.Message);
    }

    [Fact]
    public void LayerSizeMismatchIsNamed()
    {
        using var tmp = new TempDir();
        LayeredFolder.Write(tmp.Path, new LayerStack(RgbaImage.Filled(4, 4, 1, 1, 1, 255), RgbaImage.Filled(4, 4, 9, 9, 9, 9)));
        PngCodec.Write(tmp.File("layer_01.png"), RgbaImage.Filled(5, 4, 0, 0, 0, 0));
        var e = Assert.Throws<BadInputException>(() => LayeredFolder.Read(tmp.Path));
        Assert.Contains("layer_01.png", e.Message);
        Assert.Contains("5x4", e.Message);
    }

    [Fact]
    public void ManifestCannotPointOutsideTheFolder()
    {
        using var tmp = new TempDir();
        LayeredFolder.Write(tmp.Path, new LayerStack(RgbaImage.Filled(4, 4, 1, 1, 1, 255)));
        File.WriteAllText(tmp.File("layers.json"), """{"width":4,"height":4,"layers":[{"file":"../../etc/passwd","name":"x"}]}""");
        Assert.Throws<BadInputException>(() => LayeredFolder.Read(tmp.Path));
    }

    [Fact]
    public void MalformedManifestIsNamed()
    {
        using var tmp = new TempDir();
        LayeredFolder.Write(tmp.Path, new LayerStack(RgbaImage.Filled(4, 4, 1, 1, 1, 255)));
        File.WriteAllText(tmp.File("layers.json"), "{\"width\": 4, \"layers\": [");
        var e = Assert.Throws<BadInputException>(() => LayeredFolder.Read(tmp.Path));
        Assert.Contains("layers.json", e.Message);
    }
}
