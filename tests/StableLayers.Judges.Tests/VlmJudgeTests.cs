using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using StableLayers.Judges.Vlm;

namespace StableLayers.Judges.Tests;

public class VlmJudgeTests
{
    private static string[] GridLabels(FakeRequest r) =>
        Regex.Match(r.Text, @"Rows \(top to bottom\): ([A-Z, ]+)").Groups[1].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    /// <summary>The calibrated 0..100 scores the fake answers for one grid request, recomputed from a locally rendered grid (asserting the grid it received is that grid).</summary>
    private static Dictionary<int, double[]> ExpectedChunk(JudgeGroup g, FakeRequest grid, int cell)
    {
        string[] labels = GridLabels(grid);
        int[] rows = labels.Select(l => CandidateLabels.IndexOf(l)!.Value).ToArray();
        var local = CalibrationGrid.Render(rows.Select(i => (CandidateLabels.Label(i), g.Candidates[i])).ToArray(), cell);
        Assert.True(local.PixelsEqual(grid.Images[1]), "the grid the server received differs from the expected layout");
        Assert.True(g.Input.PixelsEqual(grid.Images[0]));
        var p1 = labels.ToDictionary(l => l, l => VlmTestData.ExpectedPhase1(g, CandidateLabels.IndexOf(l)!.Value).Select(v => (double)v).ToArray());
        var s = FakeRubric.Grid(local, labels, p1);
        return rows.ToDictionary(i => i, i => s[CandidateLabels.Label(i)].Select(v => (double)v).ToArray());
    }

    [Fact]
    public async Task ScoresRoundTripExactlyThroughBothPhases()
    {
        await using var server = await FakeVlmServer.StartAsync();
        var g = VlmTestData.Group(3);
        using var judge = new VlmJudge(VlmTestData.Options(server));
        var result = await judge.JudgeAsync(g);

        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(VlmTestData.ExpectedPhase1(g, i).Select(v => v / 5.0), result.Candidates[i].Phase1!.ToArray());
        }

        var grid = Assert.Single(server.Received, r => r.Kind == "grid");
        var expected = ExpectedChunk(g, grid, 32);
        Assert.Equal(3, expected.Count);
        foreach (var (i, s) in expected)
        {
            Assert.Equal(s.Select(v => v / 100.0), result.Candidates[i].Calibrated!.ToArray());
            Assert.Equal(result.Candidates[i].CalibratedReward, result.Candidates[i].Reward);
        }

        Assert.Null(result.Diagnostics.CalibrationError);
        Assert.Equal(0, result.Diagnostics.Failures);
        var u = result.Diagnostics.Usage;
        Assert.Equal((4, 0, 0, 0), (u.Calls, u.Retries, u.Failures, u.CacheHits));
        long tokensIn = g.Candidates.Sum(c => FakeVlmServer.PromptTokens(1 + c.Count)) + FakeVlmServer.PromptTokens(2);
        Assert.Equal(tokensIn, u.TokensIn);
        Assert.True(u.TokensOut > 0);
        Assert.Equal(u, judge.Totals.Usage);

        foreach (var r in server.Received)
        {
            Assert.Equal(0, r.Body["temperature"]!.GetValue<double>());
            Assert.Equal(1234, r.Body["seed"]!.GetValue<long>());
            Assert.Equal("json_schema", r.Body["response_format"]!["type"]!.GetValue<string>());
            Assert.Equal("fake-vlm", r.Body["model"]!.GetValue<string>());
        }

        Assert.Contains("rubric.v1", judge.Name, StringComparison.Ordinal);
        Assert.Contains("fake-vlm", judge.Name, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FencedProseAndStringRepliesParseWithoutRetries()
    {
        await using var server = await FakeVlmServer.StartAsync();
        server.Enqueue(FakeFault.FencedJson, FakeFault.ProseAroundJson, FakeFault.NumbersAsStrings);
        var g = VlmTestData.Group(3);
        using var judge = new VlmJudge(VlmTestData.Options(server) with { Calibrate = false });
        var result = await judge.JudgeAsync(g);
        Assert.Equal(3, server.Requests);
        Assert.Equal(0, result.Diagnostics.Usage.Retries);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(VlmTestData.ExpectedPhase1(g, i).Select(v => v / 5.0), result.Candidates[i].Phase1!.ToArray());
        }
    }

    [Theory]
    [InlineData(FakeFault.MalformedJson, FakeFault.OutOfRange)]
    [InlineData(FakeFault.ServerError, FakeFault.TruncatedBody)]
    public async Task BadRepliesAreRetriedThenScored(FakeFault first, FakeFault second)
    {
        await using var server = await FakeVlmServer.StartAsync();
        server.Enqueue(first, second);
        var g = VlmTestData.Group(1);
        using var judge = new VlmJudge(VlmTestData.Options(server) with { Calibrate = false });
        var result = await judge.JudgeAsync(g);
        Assert.Equal(3, server.Requests);
        Assert.Equal(2, result.Diagnostics.Usage.Retries);
        Assert.Equal(VlmTestData.ExpectedPhase1(g, 0).Select(v => v / 5.0), result.Candidates[0].Phase1!.ToArray());
    }

    [Fact]
    public async Task RetriesAreBoundedAndFailuresAreNotScored()
    {
        await using var server = await FakeVlmServer.StartAsync();
        server.DefaultFault = FakeFault.ServerError;
        var g = VlmTestData.Group(2);
        using var judge = new VlmJudge(VlmTestData.Options(server));
        var result = await judge.JudgeAsync(g);
        Assert.Equal(2 * 3, server.Requests);
        Assert.All(result.Candidates, c =>
        {
            Assert.True(c.Failed);
            Assert.Null(c.Phase1);
            Assert.Null(c.Reward);
            Assert.Contains("HTTP 500", c.Error, StringComparison.Ordinal);
            Assert.Contains("3 attempts", c.Error, StringComparison.Ordinal);
        });
        Assert.All(result.Rewards, r => Assert.Null(r));
        Assert.Equal(2, result.Diagnostics.Failures);
        Assert.Equal((2, 4), (result.Diagnostics.Usage.Failures, result.Diagnostics.Usage.Retries));
        Assert.Contains("skipped", result.Diagnostics.CalibrationError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OneFailedCandidateIsReportedAndTheOthersAreScored()
    {
        await using var server = await FakeVlmServer.StartAsync();
        server.Enqueue(FakeFault.ServerError);
        var g = VlmTestData.Group(3);
        using var judge = new VlmJudge(VlmTestData.Options(server) with { MaxRetries = 0, MaxConcurrency = 1 });
        var result = await judge.JudgeAsync(g);
        var failed = Assert.Single(result.Candidates, c => c.Failed);
        Assert.Null(failed.Reward);
        Assert.Null(result.Rewards[failed.Index]);
        Assert.Equal(1, result.Diagnostics.Failures);
        Assert.All(result.Candidates.Where(c => !c.Failed), c =>
        {
            Assert.Equal(VlmTestData.ExpectedPhase1(g, c.Index).Select(v => v / 5.0), c.Phase1!.ToArray());
            Assert.NotNull(c.Calibrated);
        });
        var grid = Assert.Single(server.Received, r => r.Kind == "grid");
        Assert.DoesNotContain(failed.Label, GridLabels(grid));
    }

    [Fact]
    public async Task RetryAfterIsHonoured()
    {
        await using var server = await FakeVlmServer.StartAsync();
        server.RetryAfterSeconds = 1;
        server.Enqueue(FakeFault.TooManyRequests);
        using var judge = new VlmJudge(VlmTestData.Options(server) with { Calibrate = false });
        var result = await judge.JudgeAsync(VlmTestData.Group(1));
        Assert.False(result.Candidates[0].Failed);
        var arrivals = server.Received.Select(r => r.Arrival).ToArray();
        Assert.Equal(2, arrivals.Length);
        Assert.True(arrivals[1] - arrivals[0] >= TimeSpan.FromMilliseconds(950), $"retried after {(arrivals[1] - arrivals[0]).TotalMilliseconds} ms");
        Assert.Equal(1, result.Diagnostics.Usage.Retries);
    }

    [Fact]
    public async Task SlowRepliesTimeOutAndAreRetried()
    {
        await using var server = await FakeVlmServer.StartAsync();
        server.SlowDelay = TimeSpan.FromSeconds(5);
        server.Enqueue(FakeFault.Slow);
        using var judge = new VlmJudge(VlmTestData.Options(server) with { Calibrate = false, Timeout = TimeSpan.FromMilliseconds(300) });
        var sw = Stopwatch.StartNew();
        var result = await judge.JudgeAsync(VlmTestData.Group(1));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(3), $"took {sw.Elapsed}");
        Assert.False(result.Candidates[0].Failed);
        Assert.Equal((2, 1), (server.Requests, result.Diagnostics.Usage.Retries));
    }

    [Fact]
    public async Task InvalidGridLabelsAreRetriedThenAccepted()
    {
        await using var server = await FakeVlmServer.StartAsync();
        server.Enqueue(FakeFault.None, FakeFault.None, FakeFault.None, FakeFault.DuplicateLabel, FakeFault.MissingLabel);
        var g = VlmTestData.Group(3);
        using var judge = new VlmJudge(VlmTestData.Options(server));
        var result = await judge.JudgeAsync(g);
        Assert.Equal(3, server.Received.Count(r => r.Kind == "grid"));
        Assert.Equal(2, result.Diagnostics.Usage.Retries);
        Assert.All(result.Candidates, c => Assert.NotNull(c.Calibrated));
    }

    [Fact]
    public async Task FailedCalibrationFallsBackToPhase1AndIsRecorded()
    {
        await using var server = await FakeVlmServer.StartAsync();
        server.DefaultFault = FakeFault.WrongLabel;
        var g = VlmTestData.Group(3);
        using var judge = new VlmJudge(VlmTestData.Options(server));
        var result = await judge.JudgeAsync(g);
        Assert.Equal(3, server.Received.Count(r => r.Kind == "grid"));
        Assert.Contains("unknown label ZZ", result.Diagnostics.CalibrationError, StringComparison.Ordinal);
        Assert.All(result.Candidates, c =>
        {
            Assert.Null(c.Calibrated);
            Assert.NotNull(c.Reward);
            Assert.Equal(c.Phase1Reward, c.Reward);
        });
        Assert.Equal(0, result.Diagnostics.Failures);
        Assert.Equal(1, result.Diagnostics.Usage.Failures);
        Assert.Contains("calibration_error", JsonSerializer.Serialize(result), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConcurrencyBoundHolds()
    {
        await using var server = await FakeVlmServer.StartAsync();
        server.ResponseDelay = TimeSpan.FromMilliseconds(100);
        using var judge = new VlmJudge(VlmTestData.Options(server) with { Calibrate = false, MaxConcurrency = 3 });
        var results = await Task.WhenAll(judge.JudgeAsync(VlmTestData.Group(5, "a")), judge.JudgeAsync(VlmTestData.Group(4, "b")));
        Assert.Equal(9, server.Requests);
        Assert.Equal(3, server.MaxInFlight);
        Assert.All(results.SelectMany(r => r.Candidates), c => Assert.False(c.Failed));
    }

    [Fact]
    public async Task CacheAvoidsRepeatCallsAndRewritesCorruptEntries()
    {
        await using var server = await FakeVlmServer.StartAsync();
        string dir = VlmTestData.TempDir();
        var g = VlmTestData.Group(3);
        var options = VlmTestData.Options(server);
        GroupJudgement first;
        using (var judge = new VlmJudge(options, new JudgementCache(dir)))
        {
            first = await judge.JudgeAsync(g);
        }

        Assert.Equal(4, server.Requests);
        string[] files = Directory.GetFiles(dir, "*.json", SearchOption.AllDirectories);
        Assert.Equal(4, files.Length);

        using (var judge = new VlmJudge(options, new JudgementCache(dir)))
        {
            var second = await judge.JudgeAsync(g);
            Assert.Equal(4, server.Requests);
            Assert.Equal((0, 4), (second.Diagnostics.Usage.Calls, second.Diagnostics.Usage.CacheHits));
            Assert.Equal(first.Rewards, second.Rewards);
            Assert.Equal(first.Candidates.Select(c => c.Calibrated), second.Candidates.Select(c => c.Calibrated));
        }

        string victim = files.First(f => File.ReadAllText(f).Contains("\"rubric\"", StringComparison.Ordinal));
        File.WriteAllText(victim, "{ \"key\": \"not json");
        using (var judge = new VlmJudge(options, new JudgementCache(dir)))
        {
            var third = await judge.JudgeAsync(g);
            Assert.Equal(5, server.Requests);
            Assert.Equal(1, judge.Totals.CorruptCacheEntries);
            Assert.Equal(first.Rewards, third.Rewards);
        }

        using var doc = JsonDocument.Parse(File.ReadAllText(victim));
        Assert.Equal("rubric", doc.RootElement.GetProperty("kind").GetString());

        // A different model is a different key.
        using (var judge = new VlmJudge(options with { Model = "other-vlm" }, new JudgementCache(dir)))
        {
            await judge.JudgeAsync(g);
            Assert.Equal(9, server.Requests);
        }
    }

    [Fact]
    public async Task ApiKeyIsSentButNeverStored()
    {
        await using var server = await FakeVlmServer.StartAsync();
        const string key = "sk-test-SECRET-7f3a9c";
        server.RequiredApiKey = key;
        string env = "SL_TEST_VLM_KEY_" + Guid.NewGuid().ToString("N");
        Environment.SetEnvironmentVariable(env, key);
        try
        {
            string dir = VlmTestData.TempDir();
            var options = VlmTestData.Options(server) with { ApiKeyEnv = env };
            using var judge = new VlmJudge(options, new JudgementCache(dir));
            var result = await judge.JudgeAsync(VlmTestData.Group(2));
            Assert.All(result.Candidates, c => Assert.False(c.Failed));
            Assert.Equal(0, server.Unauthorized);
            foreach (string f in Directory.GetFiles(dir, "*", SearchOption.AllDirectories))
            {
                Assert.DoesNotContain(key, File.ReadAllText(f), StringComparison.Ordinal);
            }

            Assert.NotEmpty(Directory.GetFiles(dir, "*.json", SearchOption.AllDirectories));
            string report = JsonSerializer.Serialize(result) + JsonSerializer.Serialize(options) + JsonSerializer.Serialize(judge.Totals) + judge.Name;
            Assert.DoesNotContain(key, report, StringComparison.Ordinal);
            Assert.Contains(env, JsonSerializer.Serialize(options), StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable(env, null);
        }

        // Without the key: 401 is not retried, and the candidates fail (not 0).
        using var keyless = new VlmJudge(VlmTestData.Options(server));
        var denied = await keyless.JudgeAsync(VlmTestData.Group(2));
        Assert.Equal(2, server.Unauthorized);
        Assert.All(denied.Candidates, c => Assert.Contains("HTTP 401", c.Error, StringComparison.Ordinal));
    }

    [Fact]
    public async Task ChunkedCalibrationSharesAnAnchorAndCoversEveryCandidate()
    {
        await using var server = await FakeVlmServer.StartAsync();
        var g = VlmTestData.Group(5);
        using var judge = new VlmJudge(VlmTestData.Options(server) with { MaxGridRows = 3 });
        var result = await judge.JudgeAsync(g);
        var grids = server.Received.Where(r => r.Kind == "grid").OrderBy(r => string.Join("", GridLabels(r))).ToArray();
        Assert.Equal(2, grids.Length);
        string anchor = GridLabels(grids[0])[0];
        Assert.All(grids, r => Assert.Equal(anchor, GridLabels(r)[0]));
        Assert.All(grids, r => Assert.True(GridLabels(r).Length <= 3));
        var covered = grids.SelectMany(GridLabels).Where(l => l != anchor).ToList();
        Assert.Equal(4, covered.Count);
        Assert.Equal(5, covered.Append(anchor).Distinct().Count());

        var plan = grids.Select(r => (IReadOnlyList<int>)GridLabels(r).Select(l => CandidateLabels.IndexOf(l)!.Value).ToArray()).ToArray();
        var chunks = grids.Select(r => (IReadOnlyDictionary<int, double[]>)ExpectedChunk(g, r, 32)).ToArray();
        var expected = VlmJudge.Rescale(plan, chunks, CandidateLabels.IndexOf(anchor)!.Value);
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(expected[i].Select(v => v / 100.0), result.Candidates[i].Calibrated!.ToArray());
        }
    }

    [Fact]
    public async Task LogitModeGivesExpectedScores()
    {
        await using var server = await FakeVlmServer.StartAsync();
        var g = VlmTestData.Group(2);
        using var judge = new VlmJudge(VlmTestData.Options(server) with { LogitMode = true, Calibrate = false });
        var result = await judge.JudgeAsync(g);
        Assert.All(server.Received, r => Assert.True(r.Body["logprobs"]!.GetValue<bool>()));
        for (int i = 0; i < 2; i++)
        {
            double[] expected = VlmTestData.ExpectedPhase1(g, i).Select(d => ((0.7 * d) + (0.2 * ((d + 1) % 6))) / 0.9 / 5.0).ToArray();
            double[] got = result.Candidates[i].Phase1!.ToArray();
            for (int j = 0; j < 5; j++)
            {
                Assert.Equal(expected[j], got[j], 6); // the SDK carries logprobs as float
            }
        }
    }

    [Fact]
    public async Task LayersBeyondTheImageLimitAreSentAsOneStrip()
    {
        await using var server = await FakeVlmServer.StartAsync();
        var g = VlmTestData.Group(2);
        using var judge = new VlmJudge(VlmTestData.Options(server) with { Calibrate = false, MaxImagesPerRequest = 2, IncludeRecomposite = false });
        var result = await judge.JudgeAsync(g);
        Assert.All(result.Candidates, c => Assert.False(c.Failed));
        foreach (var r in server.Received)
        {
            Assert.Equal(2, r.Images.Count);
            Assert.True(g.Input.PixelsEqual(r.Images[0]));
        }

        var strips = server.Received.Select(r => r.Images[1]).ToArray();
        Assert.Contains(strips, s => s.PixelsEqual(CalibrationGrid.Render([("", g.Candidates[0])], 32)));
        Assert.Contains(strips, s => s.PixelsEqual(CalibrationGrid.Render([("", g.Candidates[1])], 32)));
    }

    [Fact]
    public async Task RecompositeIsSentWhenAsked()
    {
        await using var server = await FakeVlmServer.StartAsync();
        var g = VlmTestData.Group(1);
        using var judge = new VlmJudge(VlmTestData.Options(server) with { Calibrate = false, IncludeRecomposite = true });
        var result = await judge.JudgeAsync(g);
        var r = Assert.Single(server.Received);
        Assert.Equal(1 + g.Candidates[0].Count + 1, r.Images.Count);
        Assert.True(g.Candidates[0].FlattenOnWhite().PixelsEqual(r.Images[^1]));
        Assert.Equal(VlmTestData.ExpectedPhase1(g, 0).Select(v => v / 5.0), result.Candidates[0].Phase1!.ToArray());
    }

    [Fact]
    public async Task ModelsEndpointAnswers()
    {
        await using var server = await FakeVlmServer.StartAsync();
        using var http = new HttpClient();
        string body = await http.GetStringAsync(new Uri(server.BaseUrl + "/models"));
        Assert.Contains("fake-vlm", body, StringComparison.Ordinal);
    }
}
