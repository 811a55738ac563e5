using System.Text.Json;
using StableLayers.Cli;
using StableLayers.Core.Formats;
using StableLayers.TestSupport;
using static StableLayers.Cli.Tests.InProcessCli;

namespace StableLayers.Cli.Tests;

public class CliTests
{
    private static string Samples => Path.Combine(TestData.RepoRoot, "samples", "real-psd-dev");

    [Fact]
    public void ReadmeMainCommandEvaluatesTheBundledPsdsAgainstGroundTruth()
    {
        using var tmp = new TempDir();
        var (code, stdout, _) = Run("eval", "--pred", Path.Combine(Samples, "_psd"), "--gt", Samples, "--out", tmp.Path);
        Assert.Equal(0, code);
        Assert.Contains("evaluated 13 samples (0 failed)", stdout);
        using var doc = JsonDocument.Parse(File.ReadAllText(tmp.File("metrics.json")));
        var samples = doc.RootElement.GetProperty("samples");
        Assert.Equal(13, samples.GetArrayLength());
        foreach (var s in samples.EnumerateArray())
        {
            // The PSDs hold the same pixels as the ground truth: every layer matches exactly.
            Assert.True(s.GetProperty("best_match_l1").GetDouble() < 1e-6, s.GetProperty("id").GetString());
        }

        Assert.True(File.Exists(tmp.File("report.md")));
    }

    [Fact]
    public void MissingPredictionFolderIsBadInputWithOneLineAndNoStackTrace()
    {
        using var tmp = new TempDir();
        var (code, _, err) = Run("eval", "--pred", tmp.File("nope"), "--out", tmp.File("o"));
        Assert.Equal(2, code);
        Assert.Contains("nope", err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.DoesNotContain("   at ", err);
    }

    [Fact]
    public void EvalReportsBadSamplesAndEvaluatesTheRest()
    {
        using var tmp = new TempDir();
        var pred = tmp.File("pred");
        LayeredFolder.Write(Path.Combine(pred, "ok"), LayeredFolder.Read(Path.Combine(Samples, "layers")));
        LayeredFolder.Write(Path.Combine(pred, "cut"), LayeredFolder.Read(Path.Combine(Samples, "layers")));
        var layer = Path.Combine(pred, "cut", "layer_01.png");
        var bytes = File.ReadAllBytes(layer);
        File.WriteAllBytes(layer, bytes[..(bytes.Length / 2)]);
        var (code, stdout, err) = Run("eval", "--pred", pred, "--out", tmp.File("o"));
        Assert.Equal(0, code);
        Assert.Contains("evaluated 1 samples (1 failed)", stdout);
        Assert.Contains("layer_01.png", err);
    }

    [Fact]
    public void PixelLimitIsConfigurable()
    {
        using var tmp = new TempDir();
        var (code, stdout, err) = Run("eval", "--pred", Path.Combine(Samples, "_psd"), "--out", tmp.Path, "--max-pixels", "100000");
        Assert.Equal(0, code);
        Assert.Contains("over the limit", err);
        Assert.Contains("failed)", stdout);
        Assert.Equal(2, Run("eval", "--pred", Samples, "--out", tmp.Path, "--max-pixels", "0").Code);
    }

    [Fact]
    public void ConvertPsdToOraToFolderKeepsPixels()
    {
        using var tmp = new TempDir();
        var psd = Path.Combine(Samples, "_psd", "groups.psd");
        Assert.Equal(0, Run("convert", psd, "--out", tmp.File("g.ora"), "--white-background").Code);
        Assert.Equal(0, Run("convert", tmp.File("g.ora"), "--out", tmp.File("g")).Code);
        var back = LayeredFolder.Read(tmp.File("g"));
        var gt = LayeredFolder.Read(Path.Combine(Samples, "groups"));
        Assert.Equal(gt.Count, back.Count);
        Assert.True(StableLayers.Core.Imaging.ImageDiff.MeanAbs(gt.FlattenOnWhite(), back.FlattenOnWhite()) < 1.0 / 255);
    }

    [Fact]
    public void ConvertOfTruncatedPsdIsBadInput()
    {
        using var tmp = new TempDir();
        var bytes = File.ReadAllBytes(Path.Combine(Samples, "_psd", "layers.psd"));
        File.WriteAllBytes(tmp.File("cut.psd"), bytes[..5000]);
        var (code, _, err) = Run("convert", tmp.File("cut.psd"), "--out", tmp.File("x.ora"));
        Assert.Equal(2, code);
        Assert.Contains("cut.psd", err);
        Assert.False(File.Exists(tmp.File("x.ora")));
    }

    [Fact]
    public void SynthWritesEvenLayerCountsDeterministically()
    {
        using var tmp = new TempDir();
        var (code, stdout, _) = Run("synth", "--count", "8", "--seed", "3", "--size", "64", "--layers", "2-5", "--out", tmp.File("a"));
        Assert.Equal(0, code);
        Assert.Contains("2 layers: 2, 3 layers: 2, 4 layers: 2, 5 layers: 2", stdout);
        Assert.Equal(0, Run("synth", "--count", "8", "--seed", "3", "--size", "64", "--out", tmp.File("b")).Code);
        foreach (var dir in Directory.GetDirectories(tmp.File("a")))
        {
            var other = Path.Combine(tmp.File("b"), Path.GetFileName(dir));
            foreach (var f in Directory.GetFiles(dir, "layer_*.png"))
            {
                Assert.Equal(File.ReadAllBytes(f), File.ReadAllBytes(Path.Combine(other, Path.GetFileName(f))));
            }
        }
    }

    [Theory]
    [InlineData("5-2")]
    [InlineData("x")]
    [InlineData("1-3")]
    public void SynthRejectsBadLayerRanges(string range)
    {
        using var tmp = new TempDir();
        var (code, _, err) = Run("synth", "--count", "2", "--layers", range, "--out", tmp.Path);
        Assert.Equal(2, code);
        Assert.StartsWith("error:", err);
    }
}

public class ConvertCrelloTests
{
    [Fact]
    public void CorruptParquetIsBadInputNamingTheFile()
    {
        using var tmp = new TempDir();
        File.WriteAllBytes(tmp.File("shard.parquet"), [(byte)'P', (byte)'A', (byte)'R', (byte)'1', 0, 1, 2, 3]);
        var o = new StringWriter();
        var e = new StringWriter();
        int code = StableLayersCli.Run(["convert", tmp.File("shard.parquet"), "--out", tmp.File("out")], o, e);
        Assert.Equal(2, code);
        Assert.Contains("shard.parquet", e.ToString());
    }

    [Theory]
    [InlineData("../../etc", "_.._etc")]
    [InlineData("5f1a/b", "5f1a_b")]
    [InlineData("..", "_")]
    [InlineData("abc-123_x", "abc-123_x")]
    public void CrelloIdsCannotEscapeTheOutputFolder(string id, string expected)
    {
        Assert.Equal(expected, StableLayers.Cli.Commands.ConvertCommand.SafeFolderName(id));
    }
}

public class OraSafetyCliTests
{
    [Fact]
    public void OraWithEscapingEntryIsBadInput()
    {
        using var tmp = new TempDir();
        var path = tmp.File("evil.ora");
        using (var zip = System.IO.Compression.ZipFile.Open(path, System.IO.Compression.ZipArchiveMode.Create))
        {
            var m = zip.CreateEntry("mimetype", System.IO.Compression.CompressionLevel.NoCompression);
            using (var w = new StreamWriter(m.Open()))
            {
                w.Write("image/openraster");
            }

            var s = zip.CreateEntry("stack.xml");
            using (var w = new StreamWriter(s.Open()))
            {
                w.Write("<image w=\"4\" h=\"4\"><stack><layer src=\"../../evil.png\" name=\"x\"/></stack></image>");
            }
        }

        var o = new StringWriter();
        var e = new StringWriter();
        Assert.Equal(2, StableLayersCli.Run(["convert", path, "--out", tmp.File("out")], o, e));
        Assert.Contains("evil.ora", e.ToString());
        Assert.False(Directory.Exists(tmp.File("out")));
    }
}
