using System.Text.Json;
using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Data.Synthesis;
using StableLayers.Metrics.Evaluation;
using StableLayers.TestSupport;
using StableLayers.Training.Reporting;
using static StableLayers.Cli.Tests.InProcessCli;

namespace StableLayers.Cli.Tests;

/// <summary>The unlabeled protocol's CLI pieces: eval --judge, eval --baseline (paired.json) and its section in report.html.</summary>
public class UnlabeledProtocolCliTests
{
    /// <summary>Four "photos" decomposed by a base (their true layers) and a tuned model whose top layer is blank in two of them.</summary>
    private static (string Base, string Tuned) Predictions(TempDir tmp)
    {
        var gen = new SynthGenerator(new SynthOptions { Size = 48, Seed = 9, MinLayers = 3, MaxLayers = 3 });
        for (int i = 0; i < 4; i++)
        {
            var stack = gen.Generate(i).Stack;
            var input = stack.FlattenOnWhite();
            LayeredFolder.Write(Path.Combine(tmp.File("base"), $"p{i}"), stack, input: input);
            var tuned = i % 2 == 0 ? new LayerStack(stack.Images.Take(2).Append(new RgbaImage(48, 48)).ToArray()) : stack;
            LayeredFolder.Write(Path.Combine(tmp.File("tuned"), $"p{i}"), tuned, input: input);
        }

        return (tmp.File("base"), tmp.File("tuned"));
    }

    [Fact]
    public void EvalWithJudgeAndBaselineWritesPairedDifferences()
    {
        using var tmp = new TempDir();
        var (basePred, tunedPred) = Predictions(tmp);
        var (code, _, err) = Run("eval", "--pred", basePred, "--out", tmp.File("base-eval"), "--judge", "rubric");
        Assert.True(code == 0, err);
        (code, var stdout, err) = Run("eval", "--pred", tunedPred, "--out", tmp.File("tuned-eval"), "--judge", "rubric", "--baseline", tmp.File("base-eval"));
        Assert.True(code == 0, err);
        Assert.Contains("judged by rubric/", stdout);
        Assert.Contains("paired with", stdout);

        var baseReport = EvalReport.FromJson(File.ReadAllText(Path.Combine(tmp.File("base-eval"), "metrics.json")));
        Assert.All(baseReport.Samples, s => Assert.NotNull(s.JudgeReward));
        var paired = PairedReport.Read(Path.Combine(tmp.File("tuned-eval"), PairedReport.FileName));
        Assert.Equal(4, paired.Pairs);
        Assert.Equal(0.5, paired.All["blank"].Difference, 12);   // one extra blank layer in two of four
        Assert.Equal(0.0, paired.All["blank"].Base, 12);
        Assert.True(paired.All["judge_reward"].Difference < 0, "a blank top layer must cost reward");
        Assert.True(File.Exists(Path.Combine(tmp.File("tuned-eval"), PairedReport.MarkdownFileName)));
    }

    [Fact]
    public void MissingOrCorruptBaselineIsBadInputBeforeAnyWork()
    {
        using var tmp = new TempDir();
        var (basePred, _) = Predictions(tmp);
        var (code, _, err) = Run("eval", "--pred", basePred, "--out", tmp.File("o"), "--baseline", tmp.File("nope"));
        Assert.Equal(2, code);
        Assert.Single(err.Trim().Split('\n'));
        Assert.Contains("--baseline", err);
        File.WriteAllText(tmp.File("bad.json"), "[1,2");
        (code, _, err) = Run("eval", "--pred", basePred, "--out", tmp.File("o"), "--baseline", tmp.File("bad.json"));
        Assert.Equal(2, code);
        Assert.Contains("bad.json", err);
        Assert.False(Directory.Exists(tmp.File("o")));
    }

    [Fact]
    public void ReportShowsTheUnlabeledProtocolWhenARunHasIt()
    {
        using var tmp = new TempDir();
        string run = tmp.File("run");
        Directory.CreateDirectory(run);
        File.WriteAllText(Path.Combine(run, "metrics.jsonl"), "");
        Assert.Equal(0, Run("report", "--run-dir", run).Code);
        string html = File.ReadAllText(Path.Combine(run, RunReport.FileName));
        Assert.Contains("Labeled protocol", html);
        Assert.Contains("Unlabeled protocol", html);
        Assert.Contains("Not run for this run yet", html);

        var (basePred, tunedPred) = Predictions(tmp);
        var b = EvalRunner.Run(basePred, null);
        var t = EvalRunner.Run(tunedPred, null);
        PairedReport.Build(b, t).Write(Path.Combine(run, RunReport.UnlabeledFolder));
        Assert.Equal(0, Run("report", "--run-dir", run).Code);
        html = File.ReadAllText(Path.Combine(run, RunReport.FileName));
        Assert.DoesNotContain("Not run for this run yet", html);
        Assert.Contains("<td>blank layers</td><td>4</td><td>0.0000</td><td>0.5000</td>", html);
        Assert.Contains("bad layers / decomposition, N = 3", html);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, RunReport.UnlabeledFolder, PairedReport.FileName)));
        Assert.Equal(4, doc.RootElement.GetProperty("pairs").GetInt32());
    }
}
