using System.Diagnostics;

namespace StableLayers.Distributed.Tests;

/// <summary>
/// Starts tests/StableLayers.Distributed.Worker under Open MPI's mpirun on this machine. A machine without mpirun
/// fails the test with what to install (CI installs it in .ci/run); nothing is skipped.
/// </summary>
internal static class MpiRun
{
    internal sealed record Result(int ExitCode, string Stdout, string Stderr, TimeSpan Elapsed);

    internal static string FindMpirun()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, "mpirun");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        Assert.Fail("mpirun not found on PATH: the MPI tests need Open MPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev; .ci/run installs it)");
        return "";
    }

    /// <summary>Runs <c>mpirun -np <paramref name="ranks"/> dotnet Worker.dll args...</c> and waits at most <paramref name="timeout"/>.</summary>
    internal static Result Start(int ranks, TimeSpan timeout, params string[] args)
    {
        string worker = Path.Combine(AppContext.BaseDirectory, "StableLayers.Distributed.Worker.dll");
        Assert.True(File.Exists(worker), $"the MPI test worker was not built beside the tests: {worker}");
        var start = new ProcessStartInfo(FindMpirun())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // --oversubscribe: more ranks than the 2 cores of CI; --bind-to none: the ranks share the cores with the test host.
        foreach (var a in new[] { "-np", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture), "--oversubscribe", "--bind-to", "none" })
        {
            start.ArgumentList.Add(a);
        }

        start.ArgumentList.Add(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet");
        start.ArgumentList.Add(worker);
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        // CI containers run as root, which mpirun refuses unless told twice; set for these launches only.
        start.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
        start.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        // Waiting ranks yield their core instead of busy-polling (oversubscribed cores; docs/DISTRIBUTED.md).
        start.Environment["OMPI_MCA_mpi_yield_when_idle"] = "1";

        var watch = Stopwatch.StartNew();
        using var process = Process.Start(start) ?? throw new InvalidOperationException("mpirun did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"mpirun -np {ranks} {string.Join(' ', args)} did not finish in {timeout.TotalSeconds:F0} s\nstdout:\n{stdout.Result}\nstderr:\n{stderr.Result}");
        }

        process.WaitForExit();
        return new Result(process.ExitCode, stdout.Result, stderr.Result, watch.Elapsed);
    }
}
