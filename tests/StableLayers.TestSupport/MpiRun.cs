using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace StableLayers.TestSupport;

/// <summary>
/// Starts a .NET program under Open MPI's mpirun on this machine (the Distributed tests' worker, the CLI's
/// data-parallel tests). A machine without mpirun fails the test with what to install (CI installs it in .ci/run);
/// nothing is skipped. Every launch carries a marker variable so that a test can find and kill one of its ranks.
/// </summary>
public static class MpiRun
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr, TimeSpan Elapsed);

    /// <summary>The environment variable whose value tells this launch's ranks apart from every other process.</summary>
    public const string MarkerVariable = "STABLELAYERS_TEST_LAUNCH";

    public static string FindMpirun()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, "mpirun");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException("mpirun not found on PATH: the MPI tests need Open MPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev; .ci/run installs it)");
    }

    /// <summary>Runs <c>mpirun -np <paramref name="ranks"/> dotnet DLL args...</c> and waits at most <paramref name="timeout"/>.</summary>
    public static Result Run(int ranks, TimeSpan timeout, string dll, params string[] args)
    {
        using var launch = Launch.Start(ranks, dll, args);
        return launch.Wait(timeout);
    }

    /// <summary>One mpirun launch in progress.</summary>
    public sealed class Launch : IDisposable
    {
        private readonly Process process;
        private readonly StringBuilder stdout = new(), stderr = new();
        private readonly Stopwatch watch = Stopwatch.StartNew();
        private readonly string description;

        private Launch(Process process, string marker, string description)
        {
            this.process = process;
            Marker = marker;
            this.description = description;
            process.OutputDataReceived += (_, e) => Append(stdout, e.Data);
            process.ErrorDataReceived += (_, e) => Append(stderr, e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        /// <summary>This launch's value of <see cref="MarkerVariable"/>.</summary>
        public string Marker { get; }

        public bool HasExited => process.HasExited;

        public static Launch Start(int ranks, string dll, IEnumerable<string> args)
        {
            if (!File.Exists(dll))
            {
                throw new InvalidOperationException($"not built: {dll}");
            }

            var start = new ProcessStartInfo(FindMpirun())
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            // --oversubscribe: more ranks than the 2 cores of CI; --bind-to none: the ranks share the cores with the test host.
            foreach (var a in new[] { "-np", ranks.ToString(CultureInfo.InvariantCulture), "--oversubscribe", "--bind-to", "none" })
            {
                start.ArgumentList.Add(a);
            }

            start.ArgumentList.Add(DotnetProcess.Host);
            start.ArgumentList.Add(dll);
            var argList = args.ToList();
            foreach (var a in argList)
            {
                start.ArgumentList.Add(a);
            }

            // CI containers run as root, which mpirun refuses unless told twice; set for these launches only.
            start.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
            start.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
            // Waiting ranks yield their core instead of busy-polling (oversubscribed cores; docs/DISTRIBUTED.md).
            start.Environment["OMPI_MCA_mpi_yield_when_idle"] = "1";
            string marker = Guid.NewGuid().ToString("N");
            start.Environment[MarkerVariable] = marker;
            var process = Process.Start(start) ?? throw new InvalidOperationException("mpirun did not start");
            return new Launch(process, marker, $"mpirun -np {ranks} {Path.GetFileName(dll)} {string.Join(' ', argList)}");
        }

        /// <summary>
        /// The process id of rank <paramref name="rank"/> of this launch (found by its marker and Open MPI's
        /// OMPI_COMM_WORLD_RANK in /proc), or null while it has not started.
        /// </summary>
        public int? RankProcessId(int rank)
        {
            string wantMarker = $"{MarkerVariable}={Marker}", wantRank = $"OMPI_COMM_WORLD_RANK={rank.ToString(CultureInfo.InvariantCulture)}";
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
                {
                    continue;
                }

                try
                {
                    var variables = File.ReadAllText(Path.Combine(dir, "environ")).Split('\0');
                    if (variables.Contains(wantMarker) && variables.Contains(wantRank))
                    {
                        return pid;
                    }
                }
                catch (IOException)
                {
                }
                catch (UnauthorizedAccessException)
                {
                }
            }

            return null;
        }

        public Result Wait(TimeSpan timeout)
        {
            if (!process.WaitForExit(timeout))
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
                throw new TimeoutException($"{description} did not finish in {timeout.TotalSeconds:F0} s\nstdout:\n{Text(stdout)}\nstderr:\n{Text(stderr)}");
            }

            process.WaitForExit();
            return new Result(process.ExitCode, Text(stdout), Text(stderr), watch.Elapsed);
        }

        public void Dispose()
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
            }

            process.Dispose();
        }

        private static void Append(StringBuilder sb, string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (sb)
            {
                sb.AppendLine(line);
            }
        }

        private static string Text(StringBuilder sb)
        {
            lock (sb)
            {
                return sb.ToString();
            }
        }
    }
}
