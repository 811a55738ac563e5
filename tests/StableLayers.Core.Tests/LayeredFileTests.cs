using StableLayers.Core;
using StableLayers.Core.Formats;
using StableLayers.Core.Formats.Psd;
using StableLayers.Core.Imaging;
using StableLayers.TestSupport;

namespace StableLayers.Core.Tests;

public class LayeredFileTests
{
    [Theory]
    [InlineData("out.psd", LayeredFormat.Psd)]
    [InlineData("out.PSD", LayeredFormat.Psd)]
    [InlineData("out.ora", LayeredFormat.OpenRaster)]
    [InlineData("outdir", LayeredFormat.Folder)]
    public void ConvertsFolderToEachFormatAndBack(string name, LayeredFormat expected)
    {
        string dir = Path.Combine(TestData.RealPsdDev, "groups");
        var src = LayeredFile.Read(dir);
        using var tmp = new TempDir();
        string path = tmp.File(name);
        Assert.Equal(expected, LayeredFile.Write(path, src, new LayerSource("s", "MIT")));
        var content = LayeredFile.ReadContent(path);
        Assert.Equal(expected, content.Format);
        PsdTests.AssertSameStack(src, content.Stack);
        if (expected == LayeredFormat.Folder)
        {
            Assert.Equal("MIT", content.Source?.License);
        }
    }

    [Fact]
    public void ConvertPsdToFolderFollowsGroundTruthConvention()
    {
        using var tmp = new TempDir();
        string outDir = tmp.File("smart");
        var warnings = LayeredFile.Convert(Path.Combine(TestData.RealPsdDev, "_psd", "smart-object.psd"), outDir, addWhiteBackground: true);
        Assert.NotNull(warnings);
        var gt = LayeredFolder.Read(Path.Combine(TestData.RealPsdDev, "smart-object"));
        PsdTests.AssertSameStack(gt, LayeredFile.Read(outDir));
    }

    [Fact]
    public void SniffsFormatWhenExtensionIsUnknown()
    {
        using var tmp = new TempDir();
        string psd = tmp.File("layers.bin");
        File.Copy(Path.Combine(TestData.RealPsdDev, "_psd", "layers.psd"), psd);
        Assert.Equal(LayeredFormat.Psd, LayeredFile.DetectForRead(psd));
        Assert.Equal(2, LayeredFile.Read(psd).Count);

        string ora = tmp.File("x.zip");
        LayeredFile.Write(tmp.File("x.ora"), PsdReader.ReadStack(psd));
        File.Move(tmp.File("x.ora"), ora);
        Assert.Equal(LayeredFormat.OpenRaster, LayeredFile.DetectForRead(ora));
    }

    [Fact]
    public void BadPathsAreBadInput()
    {
        using var tmp = new TempDir();
        Assert.Throws<BadInputException>(() => LayeredFile.Read(tmp.File("missing.psd")));
        string txt = tmp.File("notes.txt");
        File.WriteAllText(txt, "hello");
        Assert.Contains("not a layered file", Assert.Throws<BadInputException>(() => LayeredFile.Read(txt)).Message, StringComparison.Ordinal);
        var stack = new Layers.LayerStack(RgbaImage.Filled(2, 2, 1, 1, 1, 255));
        Assert.Throws<BadInputException>(() => LayeredFile.Write(tmp.File("out.png"), stack));
    }
}
