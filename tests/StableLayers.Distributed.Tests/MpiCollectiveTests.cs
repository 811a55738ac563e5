using System.Text.Json;
using StableLayers.TestSupport;

namespace StableLayers.Distributed.Tests;

/// <summary>
/// Every collective of <see cref="MpiCommunicator"/> across real processes under mpirun, against values computed here
/// from the inputs each rank was given (tests/StableLayers.Distributed.Worker/Program.cs): rank r contributes a
/// function of r, so a sum, a maximum, a wrong root or a lost chunk each give a different number.
/// </summary>
[Collection(MpiCollection.Name)]
public sealed class MpiCollectiveTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    [Theory]
    [InlineData(2, "mpi")]
    [InlineData(3, "auto")]
    public void Every_collective_gives_the_exact_values_on_every_rank(int n, string backend)
    {
        using var dir = new TempDir();
        var run = MpiRun.Start(n, Timeout, "collectives", dir.Path, backend);
        Assert.True(run.ExitCode == 0, $"mpirun exited {run.ExitCode}\nstdout:\n{run.Stdout}\nstderr:\n{run.Stderr}");

        var ranks = Enumerable.Range(0, n).ToList();
        double sumPlus1 = ranks.Sum(r => r + 1.0), sumR = ranks.Sum(r => (double)r);
        for (int r = 0; r < n; r++)
        {
            using var json = JsonDocument.Parse(File.ReadAllText(dir.File($"rank{r}.json")));
            var root = json.RootElement;
            Assert.Equal(r, root.GetProperty("rank").GetInt32());
            Assert.Equal(n, root.GetProperty("size").GetInt32());
            Assert.Equal("Mpi", root.GetProperty("backend").GetString());
            Assert.Equal(r, root.GetProperty("localRank").GetInt32());

            AssertClose([sumPlus1, 0.5 * sumPlus1, -sumR, 1e-3 * sumR], Doubles(root, "sum"), 1e-15);
            Assert.Equal([n - 1, 0, 7.5, -1], Doubles(root, "max"));

            Assert.Equal(Enumerable.Range(0, 1000).Select(i => (i * sumPlus1) + sumR), Doubles(root, "f32"));
            AssertClose(Enumerable.Range(0, 300).Select(i => ((i * sumPlus1) + sumR) / 3.0).ToArray(), Doubles(root, "f64"), 1e-14);

            // Only the slice (elements 3..6 of the parent, storage offset 3) is reduced; the rest keeps this rank's value.
            var parent = Enumerable.Range(0, 10).Select(i => i is >= 3 and < 7 ? sumPlus1 : r + 1.0);
            Assert.Equal(parent, Doubles(root, "sliceParent"));
            Assert.Equal(Enumerable.Repeat(ranks.Sum(q => q + 2.0), 15), Doubles(root, "leaf"));

            Assert.Equal(Enumerable.Range(0, 103).Select(i => (i * sumPlus1) + sumR), Doubles(root, "chunkedF32"));
            Assert.Equal(Enumerable.Range(0, 23).Select(i => (i * sumPlus1) + sumR), Doubles(root, "chunkedSum"));
            Assert.Equal(Enumerable.Range(0, 23).Select(i => (double)ranks.Max(q => (i + q) % 5)), Doubles(root, "chunkedMax"));
            Assert.Equal(Enumerable.Range(0, 100).Select(i => (double)(byte)(i * 7)), Doubles(root, "chunkedBroadcast"));

            Assert.Equal("hello from rank 0", root.GetProperty("broadcast0").GetString());
            Assert.Equal($"data of rank {n - 1}", root.GetProperty("broadcastLast").GetString());
            Assert.Equal(0, root.GetProperty("broadcastEmpty").GetInt32());

            foreach (var key in new[] { "gathered", "gatheredByBroadcast" })
            {
                var gathered = root.GetProperty(key).EnumerateArray().Select(a => a.EnumerateArray().Select(x => x.GetInt32()).ToArray()).ToList();
                Assert.Equal(n, gathered.Count);
                for (int q = 0; q < n; q++)
                {
                    Assert.Equal(Enumerable.Repeat(q + 1, q == 1 ? 0 : (3 * q) + 2), gathered[q]);
                }
            }

            var errors = root.GetProperty("errors");
            Assert.Contains("float32 or float64 tensors, got Int32", errors.GetProperty("int32").GetString(), StringComparison.Ordinal);
            Assert.Contains("got BFloat16", errors.GetProperty("bfloat16").GetString(), StringComparison.Ordinal);
            Assert.Contains("contiguous memory; the tensor of shape [4, 3] has strides [1, 4]", errors.GetProperty("transposed").GetString(), StringComparison.Ordinal);
            Assert.Contains("got a tensor on meta", errors.GetProperty("meta").GetString(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Abort_on_one_rank_stops_the_others_with_its_message()
    {
        var run = MpiRun.Start(2, Timeout, "abort");
        Assert.True(run.ExitCode == 3, $"mpirun exited {run.ExitCode}, not the abort's code 3\nstdout:\n{run.Stdout}\nstderr:\n{run.Stderr}");
        string all = run.Stdout + run.Stderr;
        Assert.Contains("rank 1: deliberate failure for the abort test", run.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("passed the barrier", all, StringComparison.Ordinal);
        Assert.True(run.Elapsed < TimeSpan.FromSeconds(30), $"abort took {run.Elapsed.TotalSeconds:F1} s");
    }

    [Fact]
    public void Nccl_without_the_library_is_one_clear_line_on_every_rank_and_auto_falls_back_to_mpi()
    {
        var run = MpiRun.Start(2, Timeout, "nccl");
        Assert.True(run.ExitCode == 2, $"mpirun exited {run.ExitCode}\nstdout:\n{run.Stdout}\nstderr:\n{run.Stderr}");
        var lines = run.Stderr.Split('\n');
        Assert.Equal(2, lines.Count(l => l.StartsWith("distributed.backend: libnccl.so.2 not found: install NCCL 2", StringComparison.Ordinal)));
        Assert.DoesNotContain("NCCL communicator created", run.Stdout, StringComparison.Ordinal);
        Assert.Single(lines, l => l.StartsWith("note: libnccl.so.2 not found", StringComparison.Ordinal) && l.EndsWith("all-reduce runs on MPI through host memory", StringComparison.Ordinal));
        Assert.Contains("rank 0: auto on cuda chose Mpi", run.Stdout, StringComparison.Ordinal);
        Assert.Contains("rank 1: auto on cuda chose Mpi", run.Stdout, StringComparison.Ordinal);
    }

    private static double[] Doubles(JsonElement root, string name) => root.GetProperty(name).EnumerateArray().Select(e => e.GetDouble()).ToArray();

    private static void AssertClose(double[] expected, double[] actual, double relative)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double tolerance = relative * Math.Max(1, Math.Abs(expected[i]));
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance, $"element {i}: expected {expected[i]:R}, got {actual[i]:R}");
        }
    }
}

/// <summary>MPI launches run one at a time: each takes the machine's cores.</summary>
[CollectionDefinition(Name)]
public sealed class MpiCollection
{
    public const string Name = "mpirun";
}
