using System.Text.Json;
using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.Data.Synthesis;
using StableLayers.Model;
using StableLayers.Model.Inference;
using StableLayers.TestSupport;
using static StableLayers.Cli.Tests.InProcessCli;

namespace StableLayers.Cli.Tests;

/// <summary><c>decompose --layers auto</c> and layer counts up to 10 on the shipped tiny base.</summary>
public class AutoLayersCliTests
{
    private static string TinyBase => Path.Combine(TestData.RepoRoot, "models", "tiny-base");

    /// <summary>A held-out 10-layer synthetic design (64 px), flattened on white.</summary>
    private static RgbaImage TenLayerDesign() =>
        new SynthGenerator(new SynthOptions { Size = 64, MinLayers = 10, MaxLayers = 10, Seed = 1000 }).Generate(0).Stack.FlattenOnWhite();

    [Fact]
    public void AutoChoosesWithinTheRangeUpToTenLayersAndWritesEveryCandidate()
    {
        using var tmp = new TempDir();
        PngCodec.Write(tmp.File("x.png"), TenLayerDesign());
        var (code, stdout, err) = Run("decompose", tmp.File("x.png"), "--layers", "auto", "--min-layers", "9", "--max-layers", "10", "--steps", "1",
            "--model", TinyBase, "--out", tmp.File("o"), "--format", "folder,psd");
        Assert.True(code == 0, err);
        using var report = JsonDocument.Parse(File.ReadAllText(tmp.File("o/x.layers-auto.json")));
        var root = report.RootElement;
        int chosen = root.GetProperty("chosen").GetInt32();
        Assert.InRange(chosen, 9, 10);
        Assert.Equal("judge", root.GetProperty("method").GetString());
        Assert.Equal(StableLayers.Judges.Rubric.RubricJudge.JudgeName, root.GetProperty("judge").GetString());
        var candidates = root.GetProperty("candidates").EnumerateArray().ToArray();
        Assert.Equal([9, 10], candidates.Select(c => c.GetProperty("layers").GetInt32()));
        var rewards = candidates.Select(c => c.GetProperty("reward").GetDouble()).ToArray();
        Assert.All(rewards, r => Assert.InRange(r, 0, 1));
        Assert.Equal(rewards.Max(), rewards[chosen - 9]);
        Assert.Equal(chosen, LayeredFolder.Read(tmp.File("o/x")).Count);
        Assert.Equal(chosen, LayeredFile.Read(tmp.File("o/x.psd")).Count);
        Assert.Contains($"{chosen} layers chosen (9:", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void CountMethodDecomposesAtTheMaximumAndReportsTheDistinctLayers()
    {
        using var tmp = new TempDir();
        PngCodec.Write(tmp.File("x.png"), TenLayerDesign());
        var (code, _, err) = Run("decompose", tmp.File("x.png"), "--layers", "auto", "--auto-method", "count", "--max-layers", "10", "--steps", "1",
            "--model", TinyBase, "--out", tmp.File("o"));
        Assert.True(code == 0, err);
        using var report = JsonDocument.Parse(File.ReadAllText(tmp.File("o/x.layers-auto.json")));
        var root = report.RootElement;
        Assert.Equal("count", root.GetProperty("method").GetString());
        var first = root.GetProperty("candidates")[0];
        Assert.Equal(10, first.GetProperty("layers").GetInt32());
        int distinct = first.GetProperty("distinct_layers").GetInt32();
        int chosen = root.GetProperty("chosen").GetInt32();
        Assert.Equal(Math.Clamp(distinct, 2, 10), chosen);
        Assert.Equal(chosen, LayeredFolder.Read(tmp.File("o/x")).Count);
    }

    [Fact]
    public void TenLayersRunThroughThePipelineOnTheTinyBase()
    {
        using var model = LayeredModel.Load(TinyBase);
        var input = TenLayerDesign();
        var stack = new LayeredDecomposer(model).Decompose(input, new DecomposeOptions { Layers = 10, Steps = 2, Seed = 0 });
        Assert.Equal(10, stack.Count);
        Assert.All(stack.Images, l => Assert.True(l.SameSize(input)));
        // Every frame got its own layer-axis position: no two layers come out identical.
        for (int i = 0; i < 10; i++)
        {
            for (int j = i + 1; j < 10; j++)
            {
                Assert.False(stack[i].PixelsEqual(stack[j]), $"layers {i} and {j} are identical");
            }
        }

        Assert.True(stack[0].IsOpaque() || stack[0].AlphaFloats().Average() > 0.9, "layer 0 should be a background");
    }

    [Fact]
    public void ACancelledTokenStopsADecomposition()
    {
        using var model = LayeredModel.Load(TinyBase);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() =>
            new LayeredDecomposer(model).Decompose(TenLayerDesign(), new DecomposeOptions { Layers = 2, Steps = 2 }, cts.Token));
    }

    [Theory]
    [InlineData("--min-layers: must be 2..16, got 1", "--layers", "auto", "--min-layers", "1")]
    [InlineData("--max-layers: must be 2..16, got 17", "--layers", "auto", "--max-layers", "17")]
    [InlineData("--min-layers: 6 is above --max-layers 3", "--layers", "auto", "--min-layers", "6", "--max-layers", "3")]
    [InlineData("--max-layers: only used with --layers auto", "--layers", "3", "--max-layers", "5")]
    [InlineData("--min-layers: only used with --layers auto", "--min-layers", "3")]
    [InlineData("--layers: must be 1..16 or auto, got 'many'", "--layers", "many")]
    [InlineData("--layers: must be 1..16 or auto, got '17'", "--layers", "17")]
    public void BadLayerOptionsAreOneLineAndExitTwo(string message, params string[] options)
    {
        using var tmp = new TempDir();
        PngCodec.Write(tmp.File("x.png"), RgbaImage.Filled(8, 8, 1, 2, 3, 255));
        var (code, _, err) = Run(["decompose", tmp.File("x.png"), "--out", tmp.File("o"), "--model", TinyBase, .. options]);
        Assert.Equal(2, code);
        Assert.Equal($"error: {message}", err.TrimEnd());
        Assert.False(Directory.Exists(tmp.File("o")));
    }
}
