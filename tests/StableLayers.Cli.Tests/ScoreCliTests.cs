using System.CommandLine;
using System.Text.Json;
using StableLayers.Cli;
using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges;
using StableLayers.Judges.Tests;
using StableLayers.Judges.Vlm;
using StableLayers.TestSupport;
using static StableLayers.Cli.Tests.InProcessCli;

namespace StableLayers.Cli.Tests;

public class ScoreCliTests
{
    /// <summary>Off the test's thread, so the CLI's blocking wait never sits on a context the in-process server needs.</summary>
    private static Task<(int Code, string Out, string Err)> RunAsync(params string[] args) => Task.Run(() => Run(args));

    private static string Sample(string id) => Path.Combine(TestData.RealPsdDev, id);

    private static string Composite(string id) => Path.Combine(Sample(id), LayeredFolder.CompositeFile);

    /// <summary>Writes a degraded copy of a real sample's ground truth as a layered folder.</summary>
    private static string WriteDegraded(string root, string id, string degradation)
    {
        var gt = LayeredFolder.Read(Sample(id));
        Assert.True(Degradations.Applies(degradation, gt), $"{degradation} does not apply to {id}");
        string dir = Path.Combine(root, $"{id}-{degradation}");
        LayeredFolder.Write(dir, Degradations.Apply(degradation, gt));
        return dir;
    }

    private static JsonElement[] Candidates(JsonDocument doc) => doc.RootElement.GetProperty("candidates").EnumerateArray().ToArray();

    private static double[] Scores(JsonElement candidate, string phase) =>
        Criteria.Keys.Select(k => candidate.GetProperty(phase).GetProperty(k).GetDouble()).ToArray();

    [Theory]
    [InlineData("groups")]
    [InlineData("smart-object")]
    [InlineData("text-test")]
    public void RubricScoreGivesGroundTruthTheHighestReward(string id)
    {
        using var tmp = new TempDir();
        string merged = WriteDegraded(tmp.Path, id, "merged");
        string blanked = WriteDegraded(tmp.Path, id, "blanked");
        string outFile = tmp.File("out/scores.json");
        var (code, stdout, err) = Run("score", Composite(id), merged, Sample(id), blanked, "--out", outFile);
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(File.ReadAllText(outFile));
        Assert.Equal("rubric/v3", doc.RootElement.GetProperty("judge").GetString());
        Assert.Equal(Composite(id), doc.RootElement.GetProperty("input").GetString());
        var c = Candidates(doc);
        Assert.Equal(["A", "B", "C"], c.Select(x => x.GetProperty("label").GetString()));
        Assert.Equal([merged, Sample(id), blanked], c.Select(x => x.GetProperty("path").GetString()));
        Assert.All(c, x => Assert.Equal("scored", x.GetProperty("status").GetString()));
        double[] rewards = c.Select(x => x.GetProperty("reward").GetDouble()).ToArray();
        Assert.True(rewards[1] > rewards[0] && rewards[1] > rewards[2], $"{id}: ground truth {rewards[1]} vs merged {rewards[0]}, blanked {rewards[2]}");
        Assert.Equal(1, c[1].GetProperty("rank").GetInt32());

        // Phase 1 is the integer rubric (k/5); phase 2 the unrounded values, and the reward is their mean.
        foreach (var x in c)
        {
            Assert.All(Scores(x, "phase1"), v => Assert.Equal(Math.Round(v * 5), v * 5, 9));
            Assert.Equal(Scores(x, "calibrated").Average(), x.GetProperty("reward").GetDouble(), 9);
            Assert.Equal(Scores(x, "phase1").Average(), x.GetProperty("phase1_reward").GetDouble(), 9);
        }

        var diag = doc.RootElement.GetProperty("diagnostics");
        Assert.Equal(0, diag.GetProperty("failures").GetInt32());
        Assert.True(diag.TryGetProperty("ties_before", out _) && diag.TryGetProperty("usage", out _));

        // The table: one row per candidate, ground truth ranked 1; no temp files left beside the output.
        var row = stdout.Split('\n').Single(l => l.StartsWith("B ", StringComparison.Ordinal));
        Assert.Contains(Sample(id), row);
        Assert.Equal("1", row.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        Assert.Equal(["scores.json"], Directory.GetFiles(tmp.File("out")).Select(Path.GetFileName));
    }

    [Fact]
    public void CalibrateFalseLeavesOnlyPhaseOne()
    {
        using var tmp = new TempDir();
        var (code, _, err) = Run("score", Composite("groups"), Sample("groups"), WriteDegraded(tmp.Path, "groups", "blanked"), "--calibrate", "false", "--out", tmp.File("s.json"));
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(File.ReadAllText(tmp.File("s.json")));
        Assert.False(doc.RootElement.GetProperty("calibrate").GetBoolean());
        foreach (var c in Candidates(doc))
        {
            Assert.Equal(JsonValueKind.Null, c.GetProperty("calibrated").ValueKind);
            Assert.Equal(c.GetProperty("phase1_reward").GetDouble(), c.GetProperty("reward").GetDouble());
        }
    }

    [Fact]
    public async Task VlmScoresRoundTripAndTheApiKeyIsNeverWritten()
    {
        await using var server = await FakeVlmServer.StartAsync();
        const string key = "sk-test-SCORE-SECRET-91c2";
        server.RequiredApiKey = key;
        string env = "SL_TEST_SCORE_KEY_" + Guid.NewGuid().ToString("N");
        Environment.SetEnvironmentVariable(env, key);
        try
        {
            using var tmp = new TempDir();
            string blanked = WriteDegraded(tmp.Path, "groups", "blanked");
            string[] args =
            [
                "score", Composite("groups"), Sample("groups"), blanked, "--judge", "vlm", "--endpoint", server.BaseUrl.ToString(),
                "--model", "fake-vlm", "--api-key-env", env, "--cache", tmp.File("cache"), "--price-in", "2", "--out", tmp.File("scores.json"),
            ];
            var (code, stdout, err) = await RunAsync(args);
            Assert.True(code == 0, err);
            Assert.Equal(0, server.Unauthorized);
            int requests = server.Requests;
            Assert.Equal(3, requests); // two phase-1 calls and one grid

            using (var doc = JsonDocument.Parse(File.ReadAllText(tmp.File("scores.json"))))
            {
                Assert.StartsWith("vlm/fake-vlm@", doc.RootElement.GetProperty("judge").GetString(), StringComparison.Ordinal);
                var input = PngCodec.Read(Composite("groups"));
                var c = Candidates(doc);
                string[] paths = [Sample("groups"), blanked];
                for (int i = 0; i < 2; i++)
                {
                    // Phase 1 holds exactly what the server answered (0..5, stored as k/5).
                    var layers = LayeredFolder.Read(paths[i]).Images.Select(l => Compositor.FlattenOnWhite([l])).ToArray();
                    int[] expected = FakeRubric.Phase1(input, layers);
                    Assert.Equal(expected.Select(v => (double)v), Scores(c[i], "phase1").Select(v => Math.Round(v * 5, 9)));
                    Assert.Equal("scored", c[i].GetProperty("status").GetString());
                    Assert.Equal(JsonValueKind.Object, c[i].GetProperty("calibrated").ValueKind);
                }

                var usage = doc.RootElement.GetProperty("diagnostics").GetProperty("usage");
                long tokensIn = usage.GetProperty("tokens_in").GetInt64();
                Assert.Equal(3, usage.GetProperty("calls").GetInt32());
                Assert.True(tokensIn > 0);
                Assert.Equal(tokensIn * 2 / 1e6, doc.RootElement.GetProperty("cost").GetDouble(), 12);
            }

            // A re-run is answered from the cache: same scores, no new requests.
            string first = File.ReadAllText(tmp.File("scores.json"));
            var again = await RunAsync(args);
            Assert.Equal(0, again.Code);
            Assert.Equal(requests, server.Requests);
            using (var doc = JsonDocument.Parse(File.ReadAllText(tmp.File("scores.json"))))
            {
                Assert.Equal(3, doc.RootElement.GetProperty("diagnostics").GetProperty("usage").GetProperty("cache_hits").GetInt32());
                using var before = JsonDocument.Parse(first);
                Assert.Equal(
                    Candidates(before).Select(x => x.GetProperty("reward").GetDouble()),
                    Candidates(doc).Select(x => x.GetProperty("reward").GetDouble()));
            }

            string[] written = [tmp.File("scores.json"), .. Directory.GetFiles(tmp.File("cache"), "*", SearchOption.AllDirectories)];
            Assert.True(written.Length > 3);
            foreach (var f in written)
            {
                Assert.DoesNotContain(key, File.ReadAllText(f), StringComparison.Ordinal);
            }

            Assert.DoesNotContain(key, stdout + err + again.Out + again.Err, StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable(env, null);
        }
    }

    [Fact]
    public async Task ScoreUsesAPoolOfEndpointsAndShowsEachOne()
    {
        await using var down = await FakeVlmServer.StartAsync();
        await using var up = await FakeVlmServer.StartAsync();
        down.DefaultFault = FakeFault.ServerError;
        using var tmp = new TempDir();
        string blanked = WriteDegraded(tmp.Path, "groups", "blanked");
        string[] Args(string output, params string[] endpoints) =>
            ["score", Composite("groups"), Sample("groups"), blanked, .. endpoints, "--model", "fake-vlm", "--max-retries", "2", "--out", tmp.File(output)];

        foreach (var (output, endpoints) in new[]
        {
            ("comma.json", new[] { "--endpoint", $"{down.BaseUrl},{up.BaseUrl}" }),
            ("repeated.json", new[] { "--endpoint", down.BaseUrl.ToString(), "--endpoint", up.BaseUrl.ToString() }),
        })
        {
            var (code, stdout, err) = await RunAsync(Args(output, endpoints));
            Assert.True(code == 0, err);
            using var doc = JsonDocument.Parse(File.ReadAllText(tmp.File(output)));
            Assert.All(Candidates(doc), c => Assert.Equal("scored", c.GetProperty("status").GetString()));
            var e = doc.RootElement.GetProperty("diagnostics").GetProperty("usage").GetProperty("endpoints").EnumerateArray().ToArray();
            Assert.Equal([VlmJudge.PublicEndpoint(down.BaseUrl), VlmJudge.PublicEndpoint(up.BaseUrl)], e.Select(x => x.GetProperty("endpoint").GetString()));
            Assert.True(e[0].GetProperty("failures").GetInt32() >= 1);
            Assert.Equal(0, e[1].GetProperty("failures").GetInt32());
            Assert.Contains($"endpoint {VlmJudge.PublicEndpoint(up.BaseUrl)}: 3 requests, 0 failed", stdout, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task FailedVlmJudgementsAreMarkedNotScored()
    {
        await using var server = await FakeVlmServer.StartAsync();
        using var tmp = new TempDir();
        string blanked = WriteDegraded(tmp.Path, "groups", "blanked");
        string[] Args(string output) =>
            ["score", Composite("groups"), Sample("groups"), blanked, "--endpoint", server.BaseUrl.ToString(), "--model", "fake-vlm", "--max-retries", "0", "--out", tmp.File(output)];

        // One request answers 500 (no retries): that candidate fails, the other is scored, exit code 0.
        server.Enqueue(FakeFault.ServerError);
        var (code, _, err) = await RunAsync(Args("one.json"));
        Assert.Equal(0, code);
        using (var doc = JsonDocument.Parse(File.ReadAllText(tmp.File("one.json"))))
        {
            var c = Candidates(doc);
            var failed = Assert.Single(c, x => x.GetProperty("status").GetString() == "failed");
            Assert.Equal(JsonValueKind.Null, failed.GetProperty("reward").ValueKind);
            Assert.Equal(JsonValueKind.Null, failed.GetProperty("rank").ValueKind);
            Assert.False(string.IsNullOrEmpty(failed.GetProperty("error").GetString()));
            Assert.Equal(1, Assert.Single(c, x => x.GetProperty("status").GetString() == "scored").GetProperty("rank").GetInt32());
            Assert.Equal(1, doc.RootElement.GetProperty("diagnostics").GetProperty("failures").GetInt32());
            Assert.Contains($"warning: candidate {failed.GetProperty("label").GetString()}", err);
        }

        // Every judgement fails (the server wants a key we do not have): the report is still written, exit code 1.
        server.RequiredApiKey = "sk-required";
        var all = await RunAsync(Args("none.json"));
        Assert.Equal(1, all.Code);
        using var none = JsonDocument.Parse(File.ReadAllText(tmp.File("none.json")));
        Assert.All(Candidates(none), x => Assert.Equal("failed", x.GetProperty("status").GetString()));
        Assert.Contains("FAILED", all.Out);
    }

    [Fact]
    public void MissingCandidateIsBadInputNamingIt()
    {
        using var tmp = new TempDir();
        var (code, _, err) = Run("score", Composite("groups"), Sample("groups"), tmp.File("nope"), "--out", tmp.File("s.json"));
        Assert.Equal(2, code);
        Assert.StartsWith($"error: {tmp.File("nope")}:", err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.False(File.Exists(tmp.File("s.json")));
    }

    [Fact]
    public void CandidateOfAnotherSizeIsBadInputNamingIt()
    {
        using var tmp = new TempDir();
        var (code, _, err) = Run("score", Composite("groups"), Sample("groups"), Sample("section-2"), "--out", tmp.File("s.json"));
        Assert.Equal(2, code);
        Assert.Contains($"{Sample("section-2")}: candidate is 100x100 but the input image is 300x200", err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.False(File.Exists(tmp.File("s.json")));
    }

    [Fact]
    public void CorruptPngIsBadInputNamingTheFile()
    {
        using var tmp = new TempDir();
        string copy = tmp.File("cut");
        LayeredFolder.Write(copy, LayeredFolder.Read(Sample("groups")));
        string layer = Path.Combine(copy, "layer_01.png");
        byte[] bytes = File.ReadAllBytes(layer);
        File.WriteAllBytes(layer, bytes[..(bytes.Length / 2)]);
        var (code, _, err) = Run("score", Composite("groups"), Sample("groups"), copy, "--out", tmp.File("s.json"));
        Assert.Equal(2, code);
        Assert.Contains(layer, err);
        Assert.Single(err.Trim().Split('\n'));

        File.WriteAllBytes(tmp.File("input.png"), [0x89, (byte)'P', (byte)'N', (byte)'G', 1, 2, 3]);
        var bad = Run("score", tmp.File("input.png"), Sample("groups"), "--out", tmp.File("s.json"));
        Assert.Equal(2, bad.Code);
        Assert.Contains("input.png", bad.Err);
        Assert.False(File.Exists(tmp.File("s.json")));
    }

    [Theory]
    [InlineData("--judge", "vlm")]
    [InlineData("--judge", "vlm", "--endpoint", "ftp://x/v1", "--model", "m")]
    [InlineData("--api-key-env", "sk-abc/123")]
    [InlineData("--endpoint", "http://a:1/v1,http://a:1/v1", "--model", "m")]
    [InlineData("--endpoint", "http://a:1/v1,", "--model", "m")]
    public void BadJudgeOptionsAreBadInput(params string[] options)
    {
        using var tmp = new TempDir();
        var (code, _, err) = Run(["score", Composite("groups"), Sample("groups"), "--out", tmp.File("s.json"), .. options]);
        Assert.Equal(2, code);
        Assert.StartsWith("error: --", err);
        Assert.DoesNotContain("sk-abc", err);
    }

    [Fact]
    public void JudgeAgreementRanksDegradedPredictionsBelowGroundTruth()
    {
        using var tmp = new TempDir();
        string pred = tmp.File("pred");
        string[] ids = ["groups", "smart-object", "text-test", "layers"];
        string[] degradations = ["merged", "blanked", "shifted"];
        foreach (var id in ids)
        {
            var gt = LayeredFolder.Read(Sample(id));
            LayeredFolder.Write(Path.Combine(pred, id, "gt"), gt);
            foreach (var d in degradations.Where(d => Degradations.Applies(d, gt)))
            {
                LayeredFolder.Write(Path.Combine(pred, id, d), Degradations.Apply(d, gt));
            }
        }

        LayeredFolder.Write(Path.Combine(pred, "orphan"), LayeredFolder.Read(Sample("groups")));
        int expected = Directory.GetDirectories(pred).Sum(d => Math.Max(1, Directory.GetDirectories(d).Length)) - 1;
        Assert.True(expected >= 10, $"{expected} predictions");

        var (code, stdout, err) = Run("judge-agreement", "--gt", TestData.RealPsdDev, "--pred", pred, "--out", tmp.File("agreement.json"));
        Assert.True(code == 0, err);
        Assert.Contains("skipped orphan:", err);
        Assert.Contains("skipped alias:", err);
        using var doc = JsonDocument.Parse(File.ReadAllText(tmp.File("agreement.json")));
        var root = doc.RootElement;
        Assert.Equal(expected, root.GetProperty("predictions").GetArrayLength());
        Assert.All(root.GetProperty("predictions").EnumerateArray(), p => Assert.Equal("scored", p.GetProperty("status").GetString()));
        Assert.Equal(TestData.RealPsdDevSamples.Count - ids.Length + 1, root.GetProperty("skipped").GetArrayLength());

        // Ground truth has best_match_l1 = 0 and the degraded copies more: a useful judge ranks them the other way round.
        var cell = root.GetProperty("agreement").EnumerateArray()
            .Single(c => c.GetProperty("score").GetString() == "reward" && c.GetProperty("metric").GetString() == "best_match_l1");
        Assert.Equal(expected, cell.GetProperty("n").GetInt32());
        double rho = cell.GetProperty("rho").GetDouble();
        Assert.True(rho < -0.6, $"rho(reward, best_match_l1) = {rho}");
        var rows = stdout.Split('\n').Where(l => l.StartsWith("reward ", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, rows.Count); // the pooled table, then the within-group one (each sample here is a group)
        Assert.Contains(rho.ToString("+0.000;-0.000", System.Globalization.CultureInfo.InvariantCulture), rows[0]);

        // Within each sample's group ground truth is the best and the judge should rank it first.
        var within = root.GetProperty("within_group").EnumerateArray()
            .Single(c => c.GetProperty("score").GetString() == "reward" && c.GetProperty("metric").GetString() == "best_match_l1");
        Assert.Equal(ids.Length, within.GetProperty("n").GetInt32());
        double withinRho = within.GetProperty("rho").GetDouble();
        Assert.True(withinRho < -0.5, $"within-group rho(reward, best_match_l1) = {withinRho}");
        Assert.Contains(withinRho.ToString("+0.000;-0.000", System.Globalization.CultureInfo.InvariantCulture), rows[1]);
    }

    [Fact]
    public void JudgeAgreementWithoutMatchingSamplesIsBadInput()
    {
        using var tmp = new TempDir();
        LayeredFolder.Write(tmp.File("pred/nothing-like-it"), LayeredFolder.Read(Sample("groups")));
        var (code, _, err) = Run("judge-agreement", "--gt", TestData.RealPsdDev, "--pred", tmp.File("pred"));
        Assert.Equal(2, code);
        Assert.StartsWith($"error: {tmp.File("pred")}:", err);
    }

    [Fact]
    public void ReadmeCommandTableListsEveryCommand()
    {
        var rows = File.ReadAllLines(Path.Combine(TestData.RepoRoot, "README.md")).Where(l => l.StartsWith("| `stable-layers ", StringComparison.Ordinal)).ToList();
        var names = StableLayersCli.Build().Subcommands.Select(c => c.Name).ToList();
        Assert.Contains("score", names);
        Assert.Contains("judge-agreement", names);
        foreach (var name in names)
        {
            Assert.True(rows.Any(r => r.StartsWith($"| `stable-layers {name} ", StringComparison.Ordinal)), $"README command table has no row for {name}");
        }
    }
}
