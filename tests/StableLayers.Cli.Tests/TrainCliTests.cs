using StableLayers.TestSupport;
using static StableLayers.Cli.Tests.InProcessCli;

namespace StableLayers.Cli.Tests;

public class TrainCliTests
{
    /// <summary>The shipped base with a very small run: 2 steps of one group of 2 candidates, 2 held-out designs.</summary>
    private static string WriteConfig(string dir)
    {
        string path = Path.Combine(dir, "small.toml");
        File.WriteAllText(path, $"""
            steps = 2
            threads = 1
            [model]
            base = "{Path.Combine(TestData.RepoRoot, "models", "tiny-base")}"
            [data]
            heldout_count = 2
            [sampling]
            group_size = 2
            images_per_step = 1
            steps = 4
            eval_steps = 2
            sde_window = 1
            [grpo]
            minibatches = 1
            [run]
            grid_every = 1
            eval_every = 2
            """);
        return path;
    }

    [Fact]
    public void TrainsOnTheShippedBaseWritesTheRunFolderAndReport()
    {
        using var dir = new TempDir();
        string config = WriteConfig(dir.Path), run = Path.Combine(dir.Path, "run");
        var (code, stdout, stderr) = Run("train", "--config", config, "--run-dir", run, "--steps", "1");
        Assert.True(code == 0, stderr);
        Assert.Contains("step 1/2", stdout);
        Assert.Contains("continue with --resume", stdout);

        (code, stdout, stderr) = Run("train", "--config", config, "--run-dir", run, "--resume");
        Assert.True(code == 0, stderr);
        Assert.Contains("resuming at step 1", stdout);
        Assert.Contains("training done: 2 steps", stdout);
        Assert.Equal(2, File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Length);
        Assert.True(File.Exists(Path.Combine(run, "lora.safetensors")));
        string html = File.ReadAllText(Path.Combine(run, "report.html"));
        Assert.Contains("base vs tuned", html);
        Assert.Contains("data:image/png;base64,", html);

        // The adapter the run wrote is usable by decompose.
        var input = Path.Combine(TestData.RealPsdDev, "groups", "composite.png");
        (code, _, stderr) = Run("decompose", input, "--layers", "2", "--steps", "2", "--lora", Path.Combine(run, "lora.safetensors"), "--out", Path.Combine(dir.Path, "dec"));
        Assert.True(code == 0, stderr);
    }

    [Fact]
    public void BadConfigsAndFoldersAreOneLineErrors()
    {
        using var dir = new TempDir();
        string bad = Path.Combine(dir.Path, "bad.toml");
        File.WriteAllText(bad, "[grpo]\nratio_mode = \"mean\"\n");
        var (code, _, stderr) = Run("train", "--config", bad, "--run-dir", Path.Combine(dir.Path, "r"));
        Assert.Equal(2, code);
        Assert.Contains("bad.toml", stderr);
        Assert.Contains("ratio_mode", stderr);

        (code, _, stderr) = Run("report", "--run-dir", dir.Path);
        Assert.Equal(2, code);
        Assert.Contains("not a training run folder", stderr);
    }
}
