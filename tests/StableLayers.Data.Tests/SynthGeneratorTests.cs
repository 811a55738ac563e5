using SkiaSharp;
using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.Data.Rendering;
using StableLayers.Data.Synthesis;
using StableLayers.TestSupport;

namespace StableLayers.Data.Tests;

public class SynthGeneratorTests
{
    private static readonly SynthOptions Small = new() { Size = 64, Seed = 11 };

    // Shared across tests: generating a few hundred samples once keeps the suite fast on 2 cores.
    private static readonly Lazy<IReadOnlyList<SynthSample>> Batch = new(() =>
    {
        var g = new SynthGenerator(Small);
        var samples = new SynthSample[400];
        Parallel.For(0, samples.Length, i => samples[i] = g.Generate(i));
        return samples;
    });

    [Fact]
    public void SampleDependsOnlyOnSeedAndIndex()
    {
        var options = Small with { Seed = 7 };
        var a = new SynthGenerator(options).Generate(5);
        var fromRun = new SynthGenerator(options).Generate(0, 8).ToList()[5];
        var parallel = new SynthSample[8];
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => parallel[7 - i] = new SynthGenerator(options).Generate(7 - i));
        foreach (var other in new[] { fromRun, parallel[5] })
        {
            Assert.Equal(a.Id, other.Id);
            Assert.Equal(a.Caption, other.Caption);
            Assert.Equal(a.Stack.Count, other.Stack.Count);
            for (int k = 0; k < a.Stack.Count; k++)
            {
                Assert.True(a.Stack[k].PixelsEqual(other.Stack[k]), $"layer {k} differs");
                Assert.Equal(PngCodec.Encode(a.Stack[k]), PngCodec.Encode(other.Stack[k]));
            }
        }
    }

    [Fact]
    public void DifferentSeedsAndIndicesGiveDifferentSamples()
    {
        var s1 = new SynthGenerator(Small with { Seed = 1 }).Generate(0);
        var s2 = new SynthGenerator(Small with { Seed = 2 }).Generate(0);
        var s1b = new SynthGenerator(Small with { Seed = 1 }).Generate(4);
        Assert.False(s1.Stack[0].PixelsEqual(s2.Stack[0]));
        Assert.False(s1.Stack[0].PixelsEqual(s1b.Stack[0]));
        Assert.NotEqual(s1.Id, s2.Id);
    }

    [Fact]
    public void LayerCountsAreSpreadEvenly()
    {
        var counts = Batch.Value.GroupBy(s => s.Stack.Count).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(new[] { 2, 3, 4, 5 }, counts.Keys.Order());
        foreach (var n in counts.Values)
        {
            Assert.InRange(n / 400.0, 0.23, 0.27);
        }
    }

    [Fact]
    public void BackgroundIsOpaqueAndForegroundLayersAreNotBlank()
    {
        foreach (var s in Batch.Value)
        {
            Assert.True(s.Stack[0].IsOpaque(), $"{s.Id}: background not opaque");
            Assert.StartsWith("background: ", s.Stack.Layers[0].Name, StringComparison.Ordinal);
            for (int k = 1; k < s.Stack.Count; k++)
            {
                double coverage = SkiaRaster.Coverage(s.Stack[k]);
                Assert.True(coverage > 0.005, $"{s.Id} layer {k} ({s.Stack.Layers[k].Name}) coverage {coverage:F4}");
            }
        }
    }

    [Fact]
    public void ForegroundLayersStayMostlyVisibleInTheComposite()
    {
        // Each layer keeps at least half its pixels out from under the (nearly) opaque layers above it.
        foreach (var s in Batch.Value.Take(120))
        {
            for (int k = 1; k < s.Stack.Count; k++)
            {
                var p = s.Stack[k].Pixels;
                int covered = 0, visible = 0;
                for (int i = 3; i < p.Length; i += 4)
                {
                    if (p[i] < 26)
                    {
                        continue;
                    }

                    covered++;
                    bool hidden = Enumerable.Range(k + 1, s.Stack.Count - k - 1).Any(j => s.Stack[j].Pixels[i] >= 230);
                    visible += hidden ? 0 : 1;
                }

                Assert.True(visible >= 0.5 * covered, $"{s.Id} layer {k}: {visible}/{covered} visible");
            }
        }
    }

    [Fact]
    public void TextLayersHavePixelsAndTheirWordIsInTheCaption()
    {
        int textLayers = 0;
        foreach (var s in Batch.Value)
        {
            for (int k = 1; k < s.Stack.Count; k++)
            {
                string name = s.Stack.Layers[k].Name;
                if (!name.StartsWith("text: ", StringComparison.Ordinal))
                {
                    continue;
                }

                textLayers++;
                string word = name["text: ".Length..];
                Assert.Contains(word, ForegroundPainter.Words);
                Assert.Contains($"the word {word} in ", s.Caption, StringComparison.Ordinal);
                Assert.True(SkiaRaster.Coverage(s.Stack[k]) > 0.005, $"{s.Id}: text layer {word} is (nearly) empty");
            }
        }

        Assert.True(textLayers >= 40, $"only {textLayers} text layers in 400 samples");
    }

    [Fact]
    public void FontsResolveAndDrawGlyphs()
    {
        Assert.NotEmpty(SynthFonts.Typefaces);
        foreach (var tf in SynthFonts.Typefaces)
        {
            using var bitmap = SkiaRaster.NewCanvasBitmap(64, 32);
            using var canvas = new SKCanvas(bitmap);
            using var font = new SKFont(tf, 24);
            using var paint = new SKPaint { Color = SKColors.Black, IsAntialias = true };
            canvas.DrawText("SALE", 2, 26, SKTextAlign.Left, font, paint);
            canvas.Flush();
            Assert.True(SkiaRaster.Coverage(SkiaRaster.ToStraightRgba(bitmap)) > 0.05, $"typeface {tf.FamilyName} drew nothing");
        }
    }

    [Fact]
    public void CaptionsDescribeForegroundsBottomToTopOverTheBackground()
    {
        foreach (var s in Batch.Value)
        {
            Assert.False(string.IsNullOrWhiteSpace(s.Caption));
            Assert.Contains(" over ", s.Caption, StringComparison.Ordinal);
            Assert.DoesNotContain("  ", s.Caption, StringComparison.Ordinal);
        }

        Assert.Equal("a red circle and the word SALE over a blue gradient", SynthGenerator.Caption(["a red circle", "the word SALE"], "a blue gradient"));
        Assert.Equal("a, b and c over d", SynthGenerator.Caption(["a", "b", "c"], "d"));

        // A small vocabulary: every caption word comes from a short closed list (plus the words drawn).
        var vocabulary = Batch.Value.SelectMany(s => s.Caption.Split(' ')).Select(w => w.TrimEnd(',')).ToHashSet(StringComparer.Ordinal);
        Assert.True(vocabulary.Count < 90, $"caption vocabulary has {vocabulary.Count} words: {string.Join(' ', vocabulary.Order())}");
    }

    [Fact]
    public void SamplesAreVaried()
    {
        var samples = Batch.Value;
        var backgrounds = samples.Take(40).Select(s => s.Stack[0]).ToList();
        double total = 0;
        int pairs = 0;
        for (int i = 0; i < backgrounds.Count; i++)
        {
            for (int j = i + 1; j < backgrounds.Count; j++)
            {
                total += MeanAbsDiff(backgrounds[i], backgrounds[j]);
                pairs++;
            }
        }

        Assert.True(total / pairs > 0.15, $"mean pairwise background difference {total / pairs:F3}");

        var names = samples.SelectMany(s => s.Stack.Layers.Skip(1).Select(l => l.Name)).ToList();
        foreach (var kind in new[] { "shape: ", "text: ", "outline: ", "soft: ", "plate" })
        {
            Assert.Contains(names, n => n.StartsWith(kind, StringComparison.Ordinal));
        }

        var shapes = names.Where(n => n.StartsWith("shape: ", StringComparison.Ordinal)).Distinct().Count();
        Assert.Equal(ForegroundPainter.ShapeNames.Count, shapes);
        var backgroundKinds = samples.Select(s => s.Stack.Layers[0].Name).Distinct().Count();
        Assert.Equal(5, backgroundKinds);
        var colorWords = NamedColor.Palette.Count(c => samples.Any(s => s.Caption.Contains(c.Name, StringComparison.Ordinal)));
        Assert.Equal(NamedColor.Palette.Count, colorWords);
    }

    [Fact]
    public void WrittenDatasetReadsBackAsTheSameStacks()
    {
        using var tmp = new TempDir();
        var options = new SynthOptions { Size = 48, Seed = 3, MinLayers = 2, MaxLayers = 4 };
        int reported = 0;
        var gate = new object();
        var progress = new SyncProgress(n =>
        {
            lock (gate)
            {
                reported = Math.Max(reported, n);
            }
        });
        var stats = SynthGenerator.WriteDataset(tmp.Path, 9, options, progress);
        Assert.Equal(9, stats.Count);
        Assert.Equal(9, stats.SamplesByLayerCount.Values.Sum());
        Assert.Equal(3, stats.SamplesByLayerCount[2]);
        Assert.Equal(9, reported);
        Assert.True(stats.SamplesPerSecond > 0);

        var generator = new SynthGenerator(options);
        Assert.Equal(9, Directory.GetDirectories(tmp.Path).Length);
        for (int i = 0; i < 9; i++)
        {
            var expected = generator.Generate(i);
            string dir = Path.Combine(tmp.Path, expected.Id);
            var stack = LayeredFolder.Read(dir, out var manifest);
            Assert.Equal(expected.Stack.Count, stack.Count);
            for (int k = 0; k < stack.Count; k++)
            {
                Assert.True(expected.Stack[k].PixelsEqual(stack[k]));
                Assert.Equal(expected.Stack.Layers[k].Name, stack.Layers[k].Name);
            }

            Assert.Equal(expected.Caption, manifest.Caption);
            Assert.Equal("CC0-1.0", manifest.License);
            Assert.Equal($"stable-layers synth seed=3 index={i}", manifest.Source);
        }
    }

    [Fact]
    public void InvalidOptionsAreRejected()
    {
        Assert.Throws<ArgumentException>(() => new SynthGenerator(new SynthOptions { Size = 8 }));
        Assert.Throws<ArgumentException>(() => new SynthGenerator(new SynthOptions { MinLayers = 4, MaxLayers = 3 }));
        Assert.Throws<ArgumentException>(() => new SynthGenerator(new SynthOptions { MinLayers = 1 }));
    }

    [Fact]
    public void PremultipliedPixelsConvertToExactStraightAlpha()
    {
        using var bitmap = SkiaRaster.NewCanvasBitmap(8, 8);
        using (var canvas = new SKCanvas(bitmap))
        {
            using var paint = new SKPaint { Color = new SKColor(200, 100, 50, 128) };
            canvas.DrawRect(0, 0, 4, 8, paint);
        }

        // Skia stores round(c * a / 255); unpremultiplying with rounding recovers c to within the premultiplied quantum.
        var img = SkiaRaster.ToStraightRgba(bitmap);
        var premul = bitmap.GetPixelSpan()[..4].ToArray();
        Assert.Equal(128, img.Pixels[3]);
        for (int c = 0; c < 3; c++)
        {
            Assert.Equal((int)Math.Round(premul[c] * 255.0 / 128, MidpointRounding.AwayFromZero), img.Pixels[c]);
        }

        Assert.InRange(img.Pixels[0], 199, 201);
        Assert.InRange(img.Pixels[1], 99, 101);
        Assert.InRange(img.Pixels[2], 49, 51);
        Assert.Equal(new byte[] { 0, 0, 0, 0 }, img.Pixels[(4 * 4)..(5 * 4)]);
    }

    private static double MeanAbsDiff(RgbaImage a, RgbaImage b)
    {
        long sum = 0;
        for (int i = 0; i < a.Pixels.Length; i++)
        {
            sum += Math.Abs(a.Pixels[i] - b.Pixels[i]);
        }

        return sum / (255.0 * a.Pixels.Length * 3 / 4);
    }

    private sealed class SyncProgress(Action<int> report) : IProgress<int>
    {
        public void Report(int value) => report(value);
    }
}
