using System.IO.Compression;
using System.Text;
using StableLayers.Core;
using StableLayers.Core.Formats;
using StableLayers.Core.Formats.OpenRaster;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.TestSupport;

namespace StableLayers.Core.Tests;

public class OpenRasterTests
{
    public static TheoryData<string> Samples() => LayeredFolderTests.Samples();

    private static LayerStack Small()
    {
        var bg = RgbaImage.Filled(20, 10, 50, 60, 70, 255);
        var fg = new RgbaImage(20, 10);
        for (int y = 2; y < 5; y++)
        {
            for (int x = 3; x < 9; x++)
            {
                int i = ((y * 20) + x) * 4;
                fg.Pixels[i] = 255;
                fg.Pixels[i + 3] = (byte)(40 * x);
            }
        }

        return new LayerStack([new Layer("Background <&>", bg), new Layer("Vordergrund ü", fg), new Layer("empty", new RgbaImage(20, 10))]);
    }

    [Fact]
    public void RoundTripIsExact()
    {
        var stack = Small();
        using var tmp = new TempDir();
        string path = tmp.File("a.ora");
        OpenRasterWriter.Write(path, stack);
        var doc = OpenRasterReader.Read(path);
        Assert.Empty(doc.Warnings);
        Assert.Equal((3, 2), (doc.Layers[1].X, doc.Layers[1].Y));
        PsdTests.AssertSameStack(stack, doc.ToLayerStack());
    }

    [Fact]
    public void ZipLayoutFollowsTheSpec()
    {
        using var tmp = new TempDir();
        string path = tmp.File("a.ora");
        var big = new LayerStack(RgbaImage.Filled(600, 300, 1, 2, 3, 255), RgbaImage.Filled(600, 300, 9, 9, 9, 9));
        OpenRasterWriter.Write(path, big);
        var bytes = File.ReadAllBytes(path);

        // mimetype first and stored: its text sits right after the 30-byte local header and the 8-byte name.
        Assert.Equal("PK\u0003\u0004", Encoding.ASCII.GetString(bytes, 0, 4));
        Assert.Equal(0, BitConverter.ToUInt16(bytes, 8));
        Assert.Equal("mimetypeimage/openraster", Encoding.ASCII.GetString(bytes, 30, 24));
        using var zip = ZipFile.OpenRead(path);
        Assert.Equal("mimetype", zip.Entries[0].FullName);
        Assert.NotNull(zip.GetEntry("stack.xml"));
        Assert.NotNull(zip.GetEntry("mergedimage.png"));
        using var thumbStream = zip.GetEntry("Thumbnails/thumbnail.png")!.Open();
        using var ms = new MemoryStream();
        thumbStream.CopyTo(ms);
        var thumb = PngCodec.Decode(ms.ToArray(), "thumb");
        Assert.Equal((256, 128), (thumb.Width, thumb.Height));

        // Top layer first in stack.xml.
        using var sx = new StreamReader(zip.GetEntry("stack.xml")!.Open());
        string xml = sx.ReadToEnd();
        Assert.True(xml.IndexOf("layer 1", StringComparison.Ordinal) < xml.IndexOf("layer 0", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void RealSamplesReopenIdentically(string sample)
    {
        var src = LayeredFolder.Read(Path.Combine(TestData.RealPsdDev, sample));
        using var tmp = new TempDir();
        string path = tmp.File(sample + ".ora");
        OpenRasterWriter.Write(path, src);
        PsdTests.AssertSameStack(src, OpenRasterReader.ReadStack(path));
    }

    [Fact]
    public void ReaderHandlesNestedStacksOffsetsOpacityAndVisibility()
    {
        var red = RgbaImage.Filled(2, 2, 255, 0, 0, 200);
        using var tmp = new TempDir();
        string path = tmp.File("n.ora");
        WriteOra(path, """
            <image w="6" h="5"><stack>
              <layer name="hidden" src="data/a.png" visibility="hidden"/>
              <stack x="1" y="1" opacity="0.5" name="g">
                <layer name="inner" src="data/a.png" x="2" y="1" composite-op="svg:multiply"/>
              </stack>
              <layer name="off-canvas" src="data/a.png" x="5" y="-1"/>
              <text name="ignored"/>
            </stack></image>
            """, ("data/a.png", PngCodec.Encode(red)));
        var doc = OpenRasterReader.Read(path);
        Assert.Equal(["off-canvas", "inner", "hidden"], doc.Layers.Select(l => l.Name));
        Assert.Contains(doc.Warnings, w => w.Contains("svg:multiply", StringComparison.Ordinal));
        Assert.Contains(doc.Warnings, w => w.Contains("<text>", StringComparison.Ordinal));
        var stack = doc.ToLayerStack();
        Assert.Equal(2, stack.Count);
        var inner = stack[1];
        Assert.Equal(100, inner.Pixels[(((2 * 6) + 3) * 4) + 3]); // at (3,2): 200 * 0.5
        Assert.Equal(0, inner.Pixels[(((1 * 6) + 3) * 4) + 3]);
        var off = stack[0];
        Assert.Equal(200, off.Pixels[(((0 * 6) + 5) * 4) + 3]); // clipped: only row 0, column 5 is on canvas
        Assert.Equal(0, off.Pixels[(((1 * 6) + 5) * 4) + 3]);
    }

    [Theory]
    [InlineData("../../evil.png")]
    [InlineData("/etc/passwd")]
    [InlineData("data\\a.png")]
    [InlineData("data/../data/a.png")]
    [InlineData("C:/evil.png")]
    public void UnsafeSrcIsRejected(string src)
    {
        using var tmp = new TempDir();
        string path = tmp.File("evil.ora");
        WriteOra(path, $"""<image w="2" h="2"><stack><layer name="x" src="{src}"/></stack></image>""", ("data/a.png", PngCodec.Encode(new RgbaImage(2, 2))));
        var e = Assert.Throws<BadInputException>(() => OpenRasterReader.Read(path));
        Assert.StartsWith(path + ": ", e.Message, StringComparison.Ordinal);
        Assert.Contains(src, e.Message, StringComparison.Ordinal);
        Assert.Contains("unsafe", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingEntryIsNamed()
    {
        using var tmp = new TempDir();
        string path = tmp.File("m.ora");
        WriteOra(path, """<image w="2" h="2"><stack><layer name="x" src="data/nope.png"/></stack></image>""");
        var e = Assert.Throws<BadInputException>(() => OpenRasterReader.Read(path));
        Assert.Contains("data/nope.png", e.Message, StringComparison.Ordinal);
        Assert.StartsWith(path, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CorruptLayerPngNamesOraAndEntry()
    {
        using var tmp = new TempDir();
        string path = tmp.File("c.ora");
        WriteOra(path, """<image w="2" h="2"><stack><layer name="x" src="data/a.png"/></stack></image>""", ("data/a.png", [1, 2, 3]));
        var e = Assert.Throws<BadInputException>(() => OpenRasterReader.Read(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains("data/a.png", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingMimetypeOrStackXmlIsBadInput()
    {
        using var tmp = new TempDir();
        string noMime = tmp.File("nomime.ora");
        using (var zip = ZipFile.Open(noMime, ZipArchiveMode.Create))
        {
            Add(zip, "stack.xml", Encoding.UTF8.GetBytes("<image w='1' h='1'><stack/></image>"));
        }

        Assert.Contains("mimetype", Assert.Throws<BadInputException>(() => OpenRasterReader.Read(noMime)).Message, StringComparison.Ordinal);

        string noStack = tmp.File("nostack.ora");
        using (var zip = ZipFile.Open(noStack, ZipArchiveMode.Create))
        {
            Add(zip, "mimetype", Encoding.ASCII.GetBytes("image/openraster"));
        }

        Assert.Contains("stack.xml", Assert.Throws<BadInputException>(() => OpenRasterReader.Read(noStack)).Message, StringComparison.Ordinal);

        string badXml = tmp.File("badxml.ora");
        WriteOra(badXml, "<image w='1' h='1'><stack>");
        Assert.Contains("malformed", Assert.Throws<BadInputException>(() => OpenRasterReader.Read(badXml)).Message, StringComparison.Ordinal);

        string dtd = tmp.File("dtd.ora");
        WriteOra(dtd, "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><image w='1' h='1'><stack/></image>");
        Assert.Throws<BadInputException>(() => OpenRasterReader.Read(dtd));
    }

    [Fact]
    public void TruncatedOrNonZipIsBadInput()
    {
        using var tmp = new TempDir();
        string good = tmp.File("good.ora");
        OpenRasterWriter.Write(good, Small());
        var bytes = File.ReadAllBytes(good);
        foreach (int n in new[] { 0, 3, 40, bytes.Length / 2, bytes.Length - 30, bytes.Length - 1 })
        {
            string cut = tmp.File($"cut{n}.ora");
            File.WriteAllBytes(cut, bytes[..n]);
            var e = Assert.Throws<BadInputException>(() => OpenRasterReader.Read(cut));
            Assert.StartsWith(cut + ": ", e.Message, StringComparison.Ordinal);
        }

        // Damage inside the compressed stack.xml must also surface as bad input, not a crash.
        var rng = new Random(5);
        for (int k = 0; k < 100; k++)
        {
            var copy = (byte[])bytes.Clone();
            copy[rng.Next(60, copy.Length)] ^= (byte)(1 + rng.Next(255));
            string p = tmp.File("fuzz.ora");
            File.WriteAllBytes(p, copy);
            try
            {
                OpenRasterReader.Read(p);
            }
            catch (BadInputException)
            {
            }
        }
    }

    [Fact]
    public void ZipBombAndHugeCanvasAreRejected()
    {
        using var tmp = new TempDir();
        string bomb = tmp.File("bomb.ora");
        using (var zip = ZipFile.Open(bomb, ZipArchiveMode.Create))
        {
            Add(zip, "mimetype", Encoding.ASCII.GetBytes("image/openraster"));
            Add(zip, "stack.xml", new byte[OpenRasterReader.MaxStackXmlBytes + 10], CompressionLevel.SmallestSize);
        }

        Assert.Contains("limit", Assert.Throws<BadInputException>(() => OpenRasterReader.Read(bomb)).Message, StringComparison.Ordinal);

        string huge = tmp.File("huge.ora");
        WriteOra(huge, "<image w='100000' h='100000'><stack/></image>");
        Assert.Contains("over the limit", Assert.Throws<BadInputException>(() => OpenRasterReader.Read(huge)).Message, StringComparison.Ordinal);
    }

    private static void WriteOra(string path, string stackXml, params (string Name, byte[] Data)[] entries)
    {
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        Add(zip, "mimetype", Encoding.ASCII.GetBytes("image/openraster"), CompressionLevel.NoCompression);
        Add(zip, "stack.xml", Encoding.UTF8.GetBytes(stackXml));
        foreach (var (name, data) in entries)
        {
            Add(zip, name, data);
        }
    }

    private static void Add(ZipArchive zip, string name, byte[] data, CompressionLevel level = CompressionLevel.Fastest)
    {
        using var s = zip.CreateEntry(name, level).Open();
        s.Write(data);
    }
}
