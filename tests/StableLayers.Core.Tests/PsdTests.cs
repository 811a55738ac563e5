using StableLayers.Core;
using StableLayers.Core.Formats;
using StableLayers.Core.Formats.Psd;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.TestSupport;
using Xunit.Abstractions;

namespace StableLayers.Core.Tests;

public class PsdTests(ITestOutputHelper output)
{
    public static TheoryData<string> Samples() => LayeredFolderTests.Samples();

    private static string PsdOf(string sample) => Path.Combine(TestData.RealPsdDev, "_psd", sample + ".psd");

    [Theory]
    [MemberData(nameof(Samples))]
    public void RealPsdMatchesGroundTruthFolder(string sample)
    {
        var doc = PsdReader.Read(PsdOf(sample));
        foreach (var w in doc.Warnings)
        {
            output.WriteLine("warning: " + w);
        }

        foreach (var l in doc.Layers)
        {
            output.WriteLine($"layer '{l.Name}' {l.Left},{l.Top} {l.Width}x{l.Height} op {l.Opacity} fill {l.FillOpacity} {l.BlendMode} hidden {l.Hidden} clip {l.Clipped} group '{l.GroupPath}'");
        }

        var stack = doc.ToLayerStack(addWhiteBackground: true);
        var dir = Path.Combine(TestData.RealPsdDev, sample);
        var gt = LayeredFolder.Read(dir, out var manifest);
        var composite = LayeredFolder.ReadComposite(dir)!;
        double err = ImageDiff.MeanAbs(stack.FlattenOnWhite(), composite);
        output.WriteLine($"composite error {err * 255:F3}/255; layers {stack.Count} vs {gt.Count}");
        for (int i = 0; i < Math.Min(stack.Count, gt.Count); i++)
        {
            output.WriteLine($"  {i} '{stack.Layers[i].Name}' vs '{gt.Layers[i].Name}': {ImageDiff.MeanAbs(Clean(stack[i]), Clean(gt[i])) * 255:F4}/255, exact {Clean(stack[i]).PixelsEqual(Clean(gt[i]))}");
        }

        Assert.True(err < 1.0 / 255, $"recomposite differs from composite.png by {err * 255:F3}/255");
        Assert.Equal(manifest.Layers.Count, stack.Count);
        Assert.Equal(gt.Layers.Select(l => l.Name), stack.Layers.Select(l => l.Name));
        for (int i = 0; i < gt.Count; i++)
        {
            Assert.True(ImageDiff.MeanAbs(Clean(stack[i]), Clean(gt[i])) < 0.5 / 255, $"layer {i} differs");
        }
    }

    [Theory]
    [MemberData(nameof(Samples))]
    public void WrittenPsdReopensIdentically(string sample)
    {
        var src = PsdReader.ReadStack(PsdOf(sample));
        using var tmp = new TempDir();
        string path = tmp.File("out.psd");
        PsdWriter.Write(path, src);
        var doc = PsdReader.Read(path);
        Assert.Empty(doc.Warnings);
        AssertSameStack(src, doc.ToLayerStack());
        Assert.True(doc.Merged!.PixelsEqual(src.FlattenOnWhite()), "merged image is the composite on white");
    }

    [Fact]
    public void RoundTripKeepsUnicodeNamesOffsetsAndEmptyLayers()
    {
        var bg = RgbaImage.Filled(40, 30, 10, 20, 30, 255);
        var dot = new RgbaImage(40, 30);
        dot.Pixels[((5 * 40) + 7) * 4] = 200;
        dot.Pixels[(((5 * 40) + 7) * 4) + 3] = 128;
        dot.Pixels[(((29 * 40) + 39) * 4) + 1] = 9; // colour under alpha 0 still round-trips
        var empty = new RgbaImage(40, 30);
        var stack = new LayerStack([new Layer("Hintergrund ä", bg), new Layer("點 dot", dot), new Layer(new string('x', 300), empty)]);
        var bytes = PsdWriter.Encode(stack);
        var doc = PsdReader.Read(bytes, "mem.psd");
        Assert.Equal(3, doc.Layers.Count);
        Assert.Equal((7, 5), (doc.Layers[1].Left, doc.Layers[1].Top));
        Assert.Null(doc.Layers[2].Pixels);
        var back = doc.ToLayerStack();
        AssertSameStack(new LayerStack([.. stack.Layers.Take(2)]), back);
    }

    [Fact]
    public void GroupRecordsAreNotLayers()
    {
        var doc = PsdReader.Read(PsdOf("groups"));
        Assert.Contains(doc.Layers, l => l.GroupPath == "Group 1");
        Assert.All(doc.ToLayerStack().Layers, l => Assert.DoesNotContain("Layer group", l.Name, StringComparison.Ordinal));
    }

    [Fact]
    public void RawChannelsAndUserMaskAreRead()
    {
        // Hand-built PSD: 4x2 canvas, one 2x2 layer at (1,0), raw channels, a 2x1 user mask at (1,0) with default 0.
        var b = new List<byte>();
        void U16(int v) => b.AddRange([(byte)(v >> 8), (byte)v]);
        void U32(int v) => b.AddRange([(byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v]);
        void Ascii(string s) => b.AddRange(System.Text.Encoding.ASCII.GetBytes(s));
        Ascii("8BPS");
        U16(1);
        b.AddRange(new byte[6]);
        U16(3);
        U32(2);
        U32(4);
        U16(8);
        U16(3);
        U32(0);
        U32(0);
        var rec = new List<byte>();
        void R32(int v) => rec.AddRange([(byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v]);
        void R16(int v) => rec.AddRange([(byte)(v >> 8), (byte)v]);
        R16(1);
        R32(0);
        R32(1);
        R32(2);
        R32(3);
        R16(5);
        foreach (int id in new[] { -1, 0, 1, 2 })
        {
            R16(id);
            R32(2 + 4);
        }

        R16(-2);
        R32(2 + 2);
        rec.AddRange(System.Text.Encoding.ASCII.GetBytes("8BIMnorm"));
        rec.AddRange([255, 0, 0x08, 0]);
        R32(4 + 20 + 4 + 4);
        R32(20);
        R32(0);
        R32(1);
        R32(1);
        R32(3);
        rec.AddRange([0, 0, 0, 0]); // default colour 0, flags 0, padding
        R32(0); // blending ranges
        rec.AddRange([3, (byte)'a', (byte)'b', (byte)'c']);
        foreach (var plane in new byte[][] { [255, 255, 255, 255], [10, 20, 30, 40], [1, 2, 3, 4], [5, 6, 7, 8], [128, 255] })
        {
            rec.AddRange([0, 0]);
            rec.AddRange(plane);
        }

        if (rec.Count % 2 != 0)
        {
            rec.Add(0);
        }

        U32(4 + rec.Count + 4);
        U32(rec.Count);
        b.AddRange(rec);
        U32(0);
        U16(0);
        b.AddRange(new byte[3 * 4 * 2]);
        var doc = PsdReader.Read(b.ToArray(), "hand.psd");
        Assert.Contains(doc.Warnings, w => w.Contains("mask", StringComparison.Ordinal));
        var img = doc.ToLayerStack()[0];
        Assert.Equal(new byte[] { 10, 1, 5, 128 }, img.Pixels[4..8]); // (1,0): mask 128
        Assert.Equal(new byte[] { 20, 2, 6, 255 }, img.Pixels[8..12]); // (2,0): mask 255
        Assert.Equal(0, img.Pixels[(((1 * 4) + 1) * 4) + 3]); // (1,1): outside the mask rect, default 0
        Assert.Equal(0, img.Pixels[3]); // (0,0): outside the layer
    }

    [Fact]
    public void GrayscalePsdIsReadAsGrey()
    {
        var bytes = PsdWriter.Encode(new LayerStack(RgbaImage.Filled(3, 2, 90, 10, 20, 255), RgbaImage.Filled(3, 2, 200, 0, 0, 100)));
        bytes[25] = (byte)PsdColorMode.Grayscale; // channel 0 (red here) becomes the grey channel
        var doc = PsdReader.Read(bytes, "grey.psd");
        Assert.Equal(PsdColorMode.Grayscale, doc.ColorMode);
        var stack = doc.ToLayerStack();
        Assert.Equal(new byte[] { 200, 200, 200, 100 }, stack[1].Pixels[..4]);
        Assert.Equal(new byte[] { 133, 133, 133, 255 }, doc.Merged!.Pixels[..4]); // merged red channel: 90 + (200 - 90) * 100/255
    }

    [Fact]
    public void OpacityIsBakedAndHiddenLayersAreLeftOut()
    {
        var stack = new LayerStack([
            new Layer("bg", RgbaImage.Filled(3, 2, 0, 0, 0, 255)),
            new Layer("half", RgbaImage.Filled(3, 2, 200, 0, 0, 255)),
            new Layer("hidden", RgbaImage.Filled(3, 2, 0, 200, 0, 255)),
        ]);
        var bytes = PsdWriter.Encode(stack);

        // Patch the stored records: layer 1 opacity 128, layer 2 flags "hidden" (bit 1).
        int rec = 44;
        int RecordEnd(int start) => start + 16 + 2 + 24 + 12 + 4 + (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(start + 16 + 2 + 24 + 12));
        int rec1 = RecordEnd(rec), rec2 = RecordEnd(rec1);
        bytes[rec1 + 16 + 2 + 24 + 8] = 128;
        bytes[rec2 + 16 + 2 + 24 + 10] |= 0x02;
        var doc = PsdReader.Read(bytes, "patched.psd");
        Assert.True(doc.Layers[2].Hidden);
        var back = doc.ToLayerStack();
        Assert.Equal(["bg", "half"], back.Layers.Select(l => l.Name));
        Assert.Equal(128, back[1].Pixels[3]);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(10)]
    [InlineData(26)]
    [InlineData(40)]
    [InlineData(200)]
    [InlineData(1000)]
    [InlineData(5000)]
    [InlineData(-1)]
    public void TruncatedPsdIsBadInput(int cut)
    {
        var bytes = File.ReadAllBytes(PsdOf("groups"));
        int n = cut < 0 ? bytes.Length - 1 : cut;
        using var tmp = new TempDir();
        string path = tmp.File("cut.psd");
        File.WriteAllBytes(path, bytes[..n]);
        var e = Assert.Throws<BadInputException>(() => PsdReader.Read(path));
        Assert.StartsWith(path + ": ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void EveryTruncationOfASmallPsdIsBadInput()
    {
        var stack = new LayerStack(RgbaImage.Filled(5, 4, 1, 2, 3, 255), RgbaImage.Filled(5, 4, 9, 9, 9, 100));
        var bytes = PsdWriter.Encode(stack);
        for (int n = 0; n < bytes.Length; n++)
        {
            Assert.Throws<BadInputException>(() => PsdReader.Read(bytes[..n], "small.psd"));
        }
    }

    [Fact]
    public void CorruptBytesNeverCrash()
    {
        var bytes = PsdWriter.Encode(PsdReader.ReadStack(PsdOf("text-layer")));
        var rng = new Random(1);
        for (int k = 0; k < 300; k++)
        {
            var copy = (byte[])bytes.Clone();
            for (int j = 0; j < 4; j++)
            {
                copy[rng.Next(26, copy.Length)] = (byte)rng.Next(256);
            }

            try
            {
                PsdReader.Read(copy, "fuzz.psd");
            }
            catch (BadInputException e)
            {
                Assert.StartsWith("fuzz.psd: ", e.Message, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public void WrongSignatureIsBadInput()
    {
        var bytes = PsdWriter.Encode(new LayerStack(RgbaImage.Filled(2, 2, 0, 0, 0, 255)));
        bytes[0] = (byte)'X';
        var e = Assert.Throws<BadInputException>(() => PsdReader.Read(bytes, "x.psd"));
        Assert.Contains("not a PSD", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(22, 16, "16-bit")]
    [InlineData(22, 32, "32-bit")]
    [InlineData(24, 4, "Cmyk")]
    [InlineData(24, 2, "Indexed")]
    [InlineData(4, 2, "PSB")]
    public void UnsupportedDepthOrModeIsBadInput(int offset, int value, string expected)
    {
        var bytes = PsdWriter.Encode(new LayerStack(RgbaImage.Filled(2, 2, 0, 0, 0, 255)));
        bytes[offset] = 0;
        bytes[offset + 1] = (byte)value;
        var e = Assert.Throws<BadInputException>(() => PsdReader.Read(bytes, "x.psd"));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void HugeCanvasIsRejectedBeforeAllocating()
    {
        var bytes = PsdWriter.Encode(new LayerStack(RgbaImage.Filled(2, 2, 0, 0, 0, 255)));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(14), 300000); // height
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(18), 300000); // width
        var e = Assert.Throws<BadInputException>(() => PsdReader.Read(bytes, "huge.psd"));
        Assert.Contains("over the limit", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void HugeLayerRectWithTinyDataIsRejectedBeforeAllocating()
    {
        var bytes = PsdWriter.Encode(new LayerStack(RgbaImage.Filled(4, 4, 0, 0, 0, 255)));

        // First layer record starts at 44: top, left, bottom, right. Claim 8000x8000 (under the pixel limit).
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(44 + 8), 8000);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(44 + 12), 8000);
        var e = Assert.Throws<BadInputException>(() => PsdReader.Read(bytes, "bomb.psd"));
        Assert.Contains("cannot hold", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingFileIsBadInput()
    {
        var e = Assert.Throws<BadInputException>(() => PsdReader.Read("/nonexistent/x.psd"));
        Assert.Contains("/nonexistent/x.psd", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PackBitsRoundTrips()
    {
        var rng = new Random(3);
        for (int k = 0; k < 200; k++)
        {
            var row = new byte[rng.Next(1, 700)];
            for (int i = 0; i < row.Length; i++)
            {
                row[i] = (byte)(rng.Next(3) == 0 ? rng.Next(256) : (i / 50));
            }

            var enc = new List<byte>();
            PackBits.Encode(row, enc);
            var dec = new byte[row.Length];
            Assert.True(PackBits.TryDecode(enc.ToArray(), dec));
            Assert.Equal(row, dec);
        }
    }

    internal static void AssertSameStack(LayerStack expected, LayerStack actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected.Layers[i].Name, actual.Layers[i].Name);
            Assert.True(expected[i].PixelsEqual(actual[i]), $"layer {i} ('{expected.Layers[i].Name}') pixels differ");
        }
    }

    /// <summary>Zeroes the (invisible) colour of fully transparent pixels so comparisons look at what shows.</summary>
    internal static RgbaImage Clean(RgbaImage img)
    {
        var c = img.Clone();
        for (int i = 0; i < c.Pixels.Length; i += 4)
        {
            if (c.Pixels[i + 3] == 0)
            {
                c.Pixels[i] = c.Pixels[i + 1] = c.Pixels[i + 2] = 0;
            }
        }

        return c;
    }
}
