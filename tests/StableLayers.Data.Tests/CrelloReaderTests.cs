using System.Text.Json.Serialization;
using Parquet.Serialization;
using StableLayers.Core;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Data.Crello;
using StableLayers.TestSupport;

namespace StableLayers.Data.Tests;

/// <summary>
/// The Crello loader on parquet files written here with the v5 schema (the real data cannot be downloaded on
/// these machines): int64 canvas sizes and ClassLabel types, float32 element sequences, images as a list of
/// struct {bytes, path}, plus a text column the reader must ignore.
/// </summary>
public class CrelloReaderTests
{
    private static readonly byte[] Red = [255, 0, 0, 255];
    private static readonly byte[] Blue = [0, 0, 255, 255];
    private static readonly byte[] Green = [0, 160, 0, 255];
    private static readonly byte[] Yellow = [255, 220, 0, 255];
    private static readonly byte[] Gray = [90, 90, 90, 255];

    [Fact]
    public void ElementsAreTranslatedRotatedScaledAndFaded()
    {
        using var tmp = new TempDir();
        string file = tmp.File("crello.parquet");
        Write(file, Canvases());
        var samples = CrelloReader.ReadSamples(file, CrelloOptions.Native).ToList();
        Assert.Equal(["a", "b", "c", "d"], samples.Select(s => s.Id));
        Assert.Equal(4, CrelloReader.CountRows(file));

        // Canvas a (64x48): full-canvas green, a red|blue element at (10,5) 20x10, the same rotated 90 degrees.
        var a = samples[0].Stack;
        Assert.Equal((64, 48, 3), (a.Width, a.Height, a.Count));
        Assert.True(a[0].IsOpaque());
        AssertPixel(a[0], 33, 20, Green);
        var moved = a[1];
        AssertPixel(moved, 10, 5, Red);       // top-left pixel of the element
        AssertPixel(moved, 19, 14, Red);
        AssertPixel(moved, 20, 5, Blue);      // right half
        AssertPixel(moved, 29, 14, Blue);     // bottom-right pixel
        AssertAlpha(moved, 9, 8, 0);
        AssertAlpha(moved, 30, 8, 0);
        AssertAlpha(moved, 15, 4, 0);
        AssertAlpha(moved, 15, 15, 0);

        // Box (30,20) 20x10 turned 90 degrees clockwise about (40,25): it now spans x 35..44, y 15..34, and
        // its left (red) half has swung to the top.
        var turned = a[2];
        AssertPixel(turned, 35, 15, Red);     // corners of the rotated box
        AssertPixel(turned, 44, 15, Red);
        AssertPixel(turned, 35, 34, Blue);
        AssertPixel(turned, 44, 34, Blue);
        AssertPixel(turned, 40, 18, Red);
        AssertPixel(turned, 40, 31, Blue);
        AssertAlpha(turned, 34, 25, 0);       // outside the rotated box
        AssertAlpha(turned, 45, 25, 0);
        AssertAlpha(turned, 31, 22, 0);       // inside the unrotated box, outside the rotated one
        AssertAlpha(turned, 40, 14, 0);
        AssertAlpha(turned, 40, 35, 0);

        // Canvas b (40x40): a 4x4 four-colour image enlarged 10x, and a white square at opacity 0.5.
        var b = samples[1].Stack;
        AssertPixel(b[0], 3, 3, Red, tolerance: 2);
        AssertPixel(b[0], 36, 3, Blue, tolerance: 2);
        AssertPixel(b[0], 3, 36, Yellow, tolerance: 2);
        AssertPixel(b[0], 36, 36, Green, tolerance: 2);
        var faded = b[1];
        for (int y = 11; y < 19; y++)
        {
            for (int x = 11; x < 19; x++)
            {
                AssertPixel(faded, x, y, [255, 255, 255, 128], tolerance: 1);
            }
        }

        AssertAlpha(faded, 9, 15, 0);
        AssertAlpha(faded, 20, 15, 0);
    }

    [Fact]
    public void LayerDConventionsDropHiddenAndTranslucentElementsAndScaleToShortSide512()
    {
        using var tmp = new TempDir();
        string file = tmp.File("crello.parquet");
        Write(file, Canvases());
        var samples = CrelloReader.ReadSamples(file).ToDictionary(s => s.Id, s => s.Stack);

        // c (100x50): a red square hidden by an opaque full-canvas gray element, a translucent element (no opaque
        // pixel) and a blue square: only gray and blue remain, at 1024x512 (x10.24).
        var c = samples["c"];
        Assert.Equal((1024, 512, 2), (c.Width, c.Height, c.Count));
        AssertPixel(c[0], 50, 50, Gray);
        AssertPixel(c[1], 600, 300, Blue);     // the blue square spans 512..716 x 204..409
        AssertAlpha(c[1], 500, 300, 0);
        AssertAlpha(c[1], 720, 300, 0);

        // d (30x20): one small element and no background: a white layer 0 is added; 768x512.
        var d = samples["d"];
        Assert.Equal((768, 512, 2), (d.Width, d.Height, d.Count));
        Assert.True(d[0].IsOpaque());
        AssertPixel(d[0], 5, 5, [255, 255, 255, 255]);
        AssertPixel(d[1], 200, 200, Red);      // element (5,5) 10x10 -> 128..384 (x25.6)
        AssertAlpha(d[1], 100, 200, 0);
        AssertAlpha(d[1], 500, 100, 0);

        // a keeps all three layers (each has opaque pixels, the green base is at the bottom already).
        Assert.Equal(3, samples["a"].Count);
        Assert.Equal((683, 512), (samples["a"].Width, samples["a"].Height)); // 64x48 x10.67
    }

    [Fact]
    public void OtherColumnTypesOfTheSameSchemaReadTheSame()
    {
        using var tmp = new TempDir();
        string f64 = tmp.File("v5.parquet");
        string other = tmp.File("other.parquet");
        var canvases = Canvases();
        Write(f64, canvases);
        {
            var rows = canvases.Select(c => new AltRow
            {
                Id = c.Id,
                CanvasWidth = (int)c.CanvasWidth,
                CanvasHeight = (int)c.CanvasHeight,
                Type = c.Type!.Select(t => t == 0 ? "svgElement" : "imageElement").ToList(),
                Left = c.Left!.Select(v => (double?)v).ToList(),
                Top = c.Top!.Select(v => (double?)v).ToList(),
                Width = c.Width!.Select(v => (double?)v).ToList(),
                Height = c.Height!.Select(v => (double?)v).ToList(),
                Angle = c.Angle!.Select(v => (double?)v).ToList(),
                Opacity = c.Opacity!.Select(v => (double?)v).ToList(),
                Image = c.Image,
            }).ToList();
            Serialize(other, rows);
        }

        var x = CrelloReader.ReadSamples(f64, CrelloOptions.Native).ToList();
        var y = CrelloReader.ReadSamples(other, CrelloOptions.Native).ToList();
        Assert.Equal(x.Count, y.Count);
        for (int i = 0; i < x.Count; i++)
        {
            Assert.Equal(x[i].Stack.Count, y[i].Stack.Count);
            for (int k = 0; k < x[i].Stack.Count; k++)
            {
                Assert.True(x[i].Stack[k].PixelsEqual(y[i].Stack[k]));
            }
        }

        Assert.Equal("element 1 (imageElement)", y[0].Stack.Layers[1].Name);
        Assert.Equal("element 1 (1)", x[0].Stack.Layers[1].Name);
    }

    [Fact]
    public void NotAParquetFileIsBadInput()
    {
        using var tmp = new TempDir();
        string file = tmp.File("notes.parquet");
        File.WriteAllText(file, "this is not parquet, just text that is long enough to have a footer");
        var e = Assert.Throws<BadInputException>(() => CrelloReader.ReadSamples(file).ToList());
        Assert.Contains(file, e.Message, StringComparison.Ordinal);
        Assert.Throws<BadInputException>(() => CrelloReader.ReadSamples(tmp.File("missing.parquet")).ToList());
    }

    [Fact]
    public void TruncatedParquetIsBadInput()
    {
        using var tmp = new TempDir();
        string file = tmp.File("crello.parquet");
        Write(file, Canvases());
        var bytes = File.ReadAllBytes(file);
        foreach (int keep in new[] { bytes.Length / 2, bytes.Length - 10, 12 })
        {
            string cut = tmp.File($"cut{keep}.parquet");
            File.WriteAllBytes(cut, bytes[..keep]);
            var e = Assert.Throws<BadInputException>(() => CrelloReader.ReadSamples(cut).ToList());
            Assert.Equal(cut, e.FilePath);
        }
    }

    [Fact]
    public void MissingColumnIsBadInputNamingIt()
    {
        using var tmp = new TempDir();
        string file = tmp.File("noleft.parquet");
        Serialize(file, new[] { new NoLeftRow { Id = "x", CanvasWidth = 10, CanvasHeight = 10 } });

        var e = Assert.Throws<BadInputException>(() => CrelloReader.ReadSamples(file).ToList());
        Assert.Contains("'left'", e.Message, StringComparison.Ordinal);
        Assert.Contains(file, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CorruptElementImageIsBadInputNamingRowAndElement()
    {
        using var tmp = new TempDir();
        string file = tmp.File("corrupt.parquet");
        var canvases = Canvases();
        var png = canvases[1].Image![1].Bytes!;
        canvases[1].Image![1] = new ImageCell { Bytes = png[..(png.Length / 2)] };
        Write(file, canvases);
        var e = Assert.Throws<BadInputException>(() => CrelloReader.ReadSamples(file, CrelloOptions.Native).ToList());
        Assert.Contains(file, e.Message, StringComparison.Ordinal);
        Assert.Contains("row 1 (id b), element 1", e.Message, StringComparison.Ordinal);

        canvases = Canvases();
        canvases[0].Image![0] = new ImageCell { Bytes = [1, 2, 3, 4, 5] };
        Write(file, canvases);
        e = Assert.Throws<BadInputException>(() => CrelloReader.ReadSamples(file, CrelloOptions.Native).ToList());
        Assert.Contains("row 0 (id a), element 0", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MismatchedElementSequencesAreBadInput()
    {
        using var tmp = new TempDir();
        string file = tmp.File("ragged.parquet");
        var canvases = Canvases();
        canvases[2].Top!.RemoveAt(0);
        Write(file, canvases);
        var e = Assert.Throws<BadInputException>(() => CrelloReader.ReadSamples(file).ToList());
        Assert.Contains("row 2 (id c)", e.Message, StringComparison.Ordinal);
        Assert.Contains("'top'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NullElementValueIsBadInputNamingIt()
    {
        using var tmp = new TempDir();
        string file = tmp.File("nulls.parquet");
        var c = Canvases()[3];
        Serialize(file, new[]
        {
            new AltRow
            {
                Id = c.Id, CanvasWidth = 30, CanvasHeight = 20, Image = c.Image,
                Left = [null], Top = [5], Width = [10], Height = [10], Angle = [0], Opacity = [1],
            },
        });
        var e = Assert.Throws<BadInputException>(() => CrelloReader.ReadSamples(file).ToList());
        Assert.Contains("row 0 (id d), element 0: 'left' is null", e.Message, StringComparison.Ordinal);
    }

    private static List<CrelloRow> Canvases()
    {
        var halves = Image(20, 10, (x, _) => x < 10 ? Red : Blue);
        var quadrants = Image(4, 4, (x, y) => (x < 2, y < 2) switch
        {
            (true, true) => Red,
            (false, true) => Blue,
            (true, false) => Yellow,
            _ => Green,
        });
        var half = Image(20, 20, (_, _) => [0, 255, 0, 128]);
        return
        [
            Row("a", 64, 48, (Image(4, 4, (_, _) => Green), 0, 0, 64, 48, 0, 1), (halves, 10, 5, 20, 10, 0, 1), (halves, 30, 20, 20, 10, 90, 1)),
            Row("b", 40, 40, (quadrants, 0, 0, 40, 40, 0, 1), (Image(8, 8, (_, _) => [255, 255, 255, 255]), 11, 11, 8, 8, 0, 0.5f)),
            Row("c", 100, 50, (Image(10, 10, (_, _) => Red), 0, 0, 10, 10, 0, 1), (Image(4, 4, (_, _) => Gray), 0, 0, 100, 50, 0, 1), (half, 10, 10, 20, 20, 0, 1), (Image(20, 20, (_, _) => Blue), 50, 20, 20, 20, 0, 1)),
            Row("d", 30, 20, (Image(10, 10, (_, _) => Red), 5, 5, 10, 10, 0, 1)),
        ];
    }

    private static CrelloRow Row(string id, long w, long h, params (byte[] Png, float Left, float Top, float Width, float Height, float Angle, float Opacity)[] elements) => new()
    {
        Id = id,
        CanvasWidth = w,
        CanvasHeight = h,
        Type = elements.Select((_, i) => (long)(i % 2)).ToList(),
        Left = elements.Select(e => e.Left).ToList(),
        Top = elements.Select(e => e.Top).ToList(),
        Width = elements.Select(e => e.Width).ToList(),
        Height = elements.Select(e => e.Height).ToList(),
        Angle = elements.Select(e => e.Angle).ToList(),
        Opacity = elements.Select(e => e.Opacity).ToList(),
        Text = elements.Select(_ => "").ToList(),
        Image = elements.Select(e => new ImageCell { Bytes = e.Png }).ToList(),
    };

    private static byte[] Image(int w, int h, Func<int, int, byte[]> color)
    {
        var img = new RgbaImage(w, h);
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                color(x, y).CopyTo(img.Pixels, ((y * w) + x) * 4);
            }
        }

        return PngCodec.Encode(img);
    }

    private static void Write(string file, List<CrelloRow> rows) => Serialize(file, rows);

    private static void Serialize<T>(string file, IEnumerable<T> rows)
    {
        using var fs = File.Create(file);
        ParquetSerializer.SerializeAsync(rows, fs).GetAwaiter().GetResult();
    }

    private static void AssertPixel(RgbaImage img, int x, int y, byte[] expected, int tolerance = 0)
    {
        int i = ((y * img.Width) + x) * 4;
        var actual = img.Pixels[i..(i + 4)];
        bool ok = Enumerable.Range(0, 4).All(c => Math.Abs(actual[c] - expected[c]) <= tolerance);
        Assert.True(ok, $"pixel ({x},{y}) is [{string.Join(",", actual)}], expected [{string.Join(",", expected)}] +-{tolerance}");
    }

    private static void AssertAlpha(RgbaImage img, int x, int y, byte expected) =>
        Assert.True(img.Pixels[(((y * img.Width) + x) * 4) + 3] == expected, $"alpha at ({x},{y}) is {img.Pixels[(((y * img.Width) + x) * 4) + 3]}, expected {expected}");

    public sealed class ImageCell
    {
        [JsonPropertyName("bytes")]
        public byte[]? Bytes { get; set; }

        [JsonPropertyName("path")]
        public string? Path { get; set; }
    }

    public sealed class CrelloRow
    {
        [JsonPropertyName("id")]
        public string? Id { get; set; }

        [JsonPropertyName("canvas_width")]
        public long CanvasWidth { get; set; }

        [JsonPropertyName("canvas_height")]
        public long CanvasHeight { get; set; }

        [JsonPropertyName("type")]
        public List<long>? Type { get; set; }

        [JsonPropertyName("left")]
        public List<float>? Left { get; set; }

        [JsonPropertyName("top")]
        public List<float>? Top { get; set; }

        [JsonPropertyName("width")]
        public List<float>? Width { get; set; }

        [JsonPropertyName("height")]
        public List<float>? Height { get; set; }

        [JsonPropertyName("angle")]
        public List<float>? Angle { get; set; }

        [JsonPropertyName("opacity")]
        public List<float>? Opacity { get; set; }

        [JsonPropertyName("text")]
        public List<string>? Text { get; set; }

        [JsonPropertyName("image")]
        public List<ImageCell>? Image { get; set; }
    }

    /// <summary>The same columns with other types a shard might use: nullable int32 sizes, string types, nullable float64 elements (as Arrow writes them).</summary>
    public sealed class AltRow
    {
        [JsonPropertyName("id")]
        public string? Id { get; set; }

        [JsonPropertyName("canvas_width")]
        public int? CanvasWidth { get; set; }

        [JsonPropertyName("canvas_height")]
        public int? CanvasHeight { get; set; }

        [JsonPropertyName("type")]
        public List<string>? Type { get; set; }

        [JsonPropertyName("left")]
        public List<double?>? Left { get; set; }

        [JsonPropertyName("top")]
        public List<double?>? Top { get; set; }

        [JsonPropertyName("width")]
        public List<double?>? Width { get; set; }

        [JsonPropertyName("height")]
        public List<double?>? Height { get; set; }

        [JsonPropertyName("angle")]
        public List<double?>? Angle { get; set; }

        [JsonPropertyName("opacity")]
        public List<double?>? Opacity { get; set; }

        [JsonPropertyName("image")]
        public List<ImageCell>? Image { get; set; }
    }

    public sealed class NoLeftRow
    {
        [JsonPropertyName("id")]
        public string? Id { get; set; }

        [JsonPropertyName("canvas_width")]
        public long CanvasWidth { get; set; }

        [JsonPropertyName("canvas_height")]
        public long CanvasHeight { get; set; }
    }
}
