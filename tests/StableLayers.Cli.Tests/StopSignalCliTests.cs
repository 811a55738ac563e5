using System.Diagnostics;
using System.Text.Json;
using StableLayers.TestSupport;

namespace StableLayers.Cli.Tests;

/// <summary>Signals to a running <c>train</c> process.</summary>
public class StopSignalCliTests
{
    /// <summary>
    /// SIGTERM (twice, as a process group's kill or mpirun's abort may send it) during a step: the step is dropped or
    /// finished, the last finished step is checkpointed and the exit code is 130 (a stop inside a step used to end
    /// with "cancelled" and no checkpoint).
    /// </summary>
    [Fact]
    public async Task TwoSigtermsTogetherStopTrainingWithACheckpoint()
    {
        using var dir = new TempDir();
        string config = Path.Combine(dir.Path, "c.toml"), run = Path.Combine(dir.Path, "run");
        File.WriteAllText(config, $"""
            steps = 50
            threads = 1
            [model]
            base = "{Path.Combine(TestData.RepoRoot, "models", "tiny-base")}"
            [data]
            heldout_count = 0
            [sampling]
            group_size = 2
            images_per_step = 1
            steps = 4
            [grpo]
            minibatches = 1
            [run]
            grid_every = 0
            checkpoint_every = 100
            """);
        using var p = Process.Start(DotnetProcess.StartInfo(Path.Combine(AppContext.BaseDirectory, "stable-layers.dll"), ["train", "--config", config, "--run-dir", run]))!;
        var stdout = new System.Text.StringBuilder();
        var sawStep = new ManualResetEventSlim();
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            lock (stdout)
            {
                stdout.AppendLine(e.Data);
            }

            if (e.Data.StartsWith("step 1/", StringComparison.Ordinal))
            {
                sawStep.Set();
            }
        };
        p.BeginOutputReadLine();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(sawStep.Wait(TimeSpan.FromMinutes(2)) || p.HasExited, "no step finished");
        Assert.False(p.HasExited, "train ended before the signals");
        // Both signals from one shell, microseconds apart.
        string id = p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture);
        using (var kill = Process.Start("/bin/sh", ["-c", $"kill -s TERM {id}; kill -s TERM {id}"])!)
        {
            await kill.WaitForExitAsync();
        }

        Assert.True(p.WaitForExit(TimeSpan.FromMinutes(2)), "train did not stop");
        p.WaitForExit();
        string errors = await stderr;
        string output;
        lock (stdout)
        {
            output = stdout.ToString();
        }

        Assert.True(p.ExitCode == StableLayersCli.ExitCancelled, $"exit {p.ExitCode}\nstdout:\n{output}\nstderr:\n{errors}");
        Assert.True(output.Contains("checkpoint at step", StringComparison.Ordinal), $"stdout:\n{output}\nstderr:\n{errors}");
        Assert.DoesNotContain("Unhandled", errors, StringComparison.Ordinal);
        var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "checkpoint", "state.json"))).RootElement;
        Assert.InRange(state.GetProperty("step").GetInt32(), 1, 49);
    }
}
