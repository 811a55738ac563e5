using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using StableLayers.Core;
using StableLayers.Judges.Vlm;
using Xunit.Abstractions;

namespace StableLayers.Judges.Tests;

/// <summary>A VLM judge over a pool of in-process fake servers, some of them failing.</summary>
public class JudgePoolTests(ITestOutputHelper output)
{
    private static VlmJudgeOptions PoolOptions(params FakeVlmServer[] servers) => VlmTestData.Options(servers[0]) with
    {
        Endpoints = servers.Select(s => s.BaseUrl).ToArray(),
        MaxConcurrency = 2,
    };

    private static void AllScoredExactly(JudgeGroup g, GroupJudgement result)
    {
        Assert.All(result.Candidates, c =>
        {
            Assert.False(c.Failed, c.Error);
            Assert.Equal(VlmTestData.ExpectedPhase1(g, c.Index).Select(v => v / 5.0), c.Phase1!.ToArray());
        });
        Assert.Equal(0, result.Diagnostics.Failures);
    }

    [Fact]
    public async Task EveryJudgementSucceedsWhileOneEndpointFailsOneDropsConnectionsAndOneIsSlow()
    {
        await using var failing = await FakeVlmServer.StartAsync();
        await using var closing = await FakeVlmServer.StartAsync();
        await using var slow = await FakeVlmServer.StartAsync();
        failing.DefaultFault = FakeFault.ServerError;
        closing.DefaultFault = FakeFault.CloseConnection;
        slow.ResponseDelay = TimeSpan.FromMilliseconds(100);
        var log = new ConcurrentQueue<string>();
        // A cool-down far longer than the test: the failing endpoints get only what was sent before they went out.
        var options = PoolOptions(failing, closing, slow) with { EndpointCooldown = TimeSpan.FromSeconds(60), EndpointCooldownMax = TimeSpan.FromSeconds(60) };
        using var judge = new VlmJudge(options, null, log.Enqueue);
        var g = VlmTestData.Group(6);
        var result = await judge.JudgeAsync(g);

        AllScoredExactly(g, result);
        Assert.All(result.Candidates, c => Assert.NotNull(c.Calibrated));
        Assert.InRange(failing.Requests, 1, options.MaxConcurrency);
        Assert.InRange(closing.Requests, 1, options.MaxConcurrency);
        Assert.Equal(6 + 1, slow.Requests);
        Assert.Contains(log, l => l.Contains($"{VlmJudge.PublicEndpoint(failing.BaseUrl)} out of rotation", StringComparison.Ordinal));
        Assert.Contains(log, l => l.Contains($"{VlmJudge.PublicEndpoint(closing.BaseUrl)} out of rotation", StringComparison.Ordinal));

        var usage = result.Diagnostics.Usage;
        var e = usage.Endpoints!;
        Assert.Equal(3, e.Count);
        Assert.Equal([failing.Requests, closing.Requests, slow.Requests], e.Select(x => x.Requests));
        Assert.Equal([failing.Requests, closing.Requests, 0], e.Select(x => x.Failures));
        Assert.Equal([1, 1, 0], e.Select(x => x.TakenOut));
        Assert.Equal(usage.Calls, e.Sum(x => x.Requests));
        Assert.True(e[2].MeanLatencyMs >= 90, $"slow endpoint mean latency {e[2].MeanLatencyMs} ms");
        var totals = judge.Totals.Endpoints!;
        Assert.True(totals[0].OutMs > 0 && totals[1].OutMs > 0 && totals[2].OutMs == 0);
        Assert.Contains("\"endpoints\":[{\"endpoint\":", JsonSerializer.Serialize(result), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AFailedEndpointComesBackOnceItRecovers()
    {
        await using var flaky = await FakeVlmServer.StartAsync();
        await using var steady = await FakeVlmServer.StartAsync();
        flaky.DefaultFault = FakeFault.ServerError;
        var log = new ConcurrentQueue<string>();
        var cooldown = TimeSpan.FromMilliseconds(200);
        var options = PoolOptions(flaky, steady) with { Calibrate = false, EndpointCooldown = cooldown, EndpointCooldownMax = cooldown };
        using var judge = new VlmJudge(options, null, log.Enqueue);

        var sw = Stopwatch.StartNew();
        AllScoredExactly(VlmTestData.Group(4, "down"), await judge.JudgeAsync(VlmTestData.Group(4, "down")));
        // In flight when it failed, plus at most one probe per cool-down that passed meanwhile.
        int probes = (int)(sw.Elapsed / cooldown);
        Assert.InRange(flaky.Requests, 1, options.MaxConcurrency + probes);
        Assert.DoesNotContain(log, l => l.Contains("back in rotation", StringComparison.Ordinal));

        flaky.DefaultFault = FakeFault.None;
        int before = flaky.Requests;
        await Task.Delay(cooldown * 1.5);
        var g = VlmTestData.Group(6, "up");
        AllScoredExactly(g, await judge.JudgeAsync(g));
        Assert.True(flaky.Requests - before >= 2, $"the recovered endpoint got {flaky.Requests - before} requests"); // the probe, then its share
        Assert.Contains(log, l => l.Contains($"{VlmJudge.PublicEndpoint(flaky.BaseUrl)} back in rotation", StringComparison.Ordinal));
        Assert.Equal(1, judge.Totals.Endpoints![0].TakenOut);
    }

    [Fact]
    public async Task WhenEveryEndpointIsDownJudgementsFailThenRecover()
    {
        await using var a = await FakeVlmServer.StartAsync();
        await using var b = await FakeVlmServer.StartAsync();
        a.DefaultFault = b.DefaultFault = FakeFault.ServerError;
        var log = new ConcurrentQueue<string>();
        var options = PoolOptions(a, b) with { Calibrate = false, EndpointCooldown = TimeSpan.FromSeconds(30), EndpointCooldownMax = TimeSpan.FromSeconds(30) };
        using var judge = new VlmJudge(options, null, log.Enqueue);

        var down = await judge.JudgeAsync(VlmTestData.Group(3, "down"));
        Assert.All(down.Candidates, c =>
        {
            Assert.True(c.Failed);
            Assert.Null(c.Phase1);
            Assert.Null(c.Reward);
            Assert.Contains("HTTP 500 (3 attempts)", c.Error, StringComparison.Ordinal);
        });
        Assert.All(down.Rewards, r => Assert.Null(r));
        Assert.Equal(3, down.Diagnostics.Failures);
        Assert.Equal(3 * (options.MaxRetries + 1), a.Requests + b.Requests);

        a.DefaultFault = b.DefaultFault = FakeFault.None;
        var g = VlmTestData.Group(3, "up");
        AllScoredExactly(g, await judge.JudgeAsync(g));
        Assert.Contains(log, l => l.Contains("back in rotation", StringComparison.Ordinal));
    }

    [Fact]
    public async Task FewestOutstandingSendsMoreToTheFastEndpoints()
    {
        await using var fast1 = await FakeVlmServer.StartAsync();
        await using var fast2 = await FakeVlmServer.StartAsync();
        await using var slow = await FakeVlmServer.StartAsync();
        fast1.ResponseDelay = fast2.ResponseDelay = TimeSpan.FromMilliseconds(30);
        slow.ResponseDelay = TimeSpan.FromMilliseconds(300);
        // Room for everything on every endpoint: only the choice of endpoint decides where requests go.
        // A generous timeout: on a loaded machine a timed-out attempt would be a retry, not a balance question.
        var options = PoolOptions(fast1, fast2, slow) with { Calibrate = false, MaxConcurrency = 8, Timeout = TimeSpan.FromSeconds(60) };
        using var judge = new VlmJudge(options);

        // Four clients, each judging one candidate after another (four requests in flight at most).
        const int Workers = 4, PerWorker = 6;
        var results = await Task.WhenAll(Enumerable.Range(0, Workers).Select(w => Task.Run(async () =>
        {
            var mine = new List<GroupJudgement>();
            for (int k = 0; k < PerWorker; k++)
            {
                mine.Add(await judge.JudgeAsync(VlmTestData.Group(1, $"w{w}k{k}")));
            }

            return mine;
        })));
        Assert.All(results.SelectMany(r => r).SelectMany(r => r.Candidates), c => Assert.False(c.Failed));

        int[] counts = [fast1.Requests, fast2.Requests, slow.Requests];
        output.WriteLine($"requests per endpoint (fast 30 ms, fast 30 ms, slow 300 ms; {Workers} clients x {PerWorker}): {string.Join(", ", counts)}");
        output.WriteLine($"mean latency ms: {string.Join(", ", judge.Totals.Endpoints!.Select(e => e.MeanLatencyMs.ToString("F0", System.Globalization.CultureInfo.InvariantCulture)))}");
        Assert.Equal(Workers * PerWorker, counts.Sum());
        Assert.True(counts[2] >= 1, "the slow endpoint is still used");
        // The slow endpoint holds one request at a time while the fast ones cycle (about 12:1 here; 3:1 even if load made every reply equally slow).
        Assert.True(counts[0] + counts[1] >= 2 * counts[2] && counts[0] > counts[2] && counts[1] >= counts[2], $"fast endpoints should get more: {string.Join(", ", counts)}");
    }

    [Fact]
    public async Task AMisconfiguredEndpointIsTakenOutAndItsRequestsGoElsewhere()
    {
        await using var wrongKey = await FakeVlmServer.StartAsync();
        await using var good = await FakeVlmServer.StartAsync();
        wrongKey.RequiredApiKey = "a-key-this-judge-does-not-have";
        var log = new ConcurrentQueue<string>();
        using var judge = new VlmJudge(PoolOptions(wrongKey, good) with { Calibrate = false, EndpointCooldown = TimeSpan.FromSeconds(60), EndpointCooldownMax = TimeSpan.FromSeconds(60) }, null, log.Enqueue);
        var g = VlmTestData.Group(4);
        AllScoredExactly(g, await judge.JudgeAsync(g));
        Assert.InRange(wrongKey.Unauthorized, 1, 2);
        Assert.Equal(4, good.Requests);
        Assert.Contains(log, l => l.Contains("out of rotation", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TheCacheHoldsWhicheverEndpointAnswered()
    {
        await using var down = await FakeVlmServer.StartAsync();
        await using var up = await FakeVlmServer.StartAsync();
        down.DefaultFault = FakeFault.ServerError;
        string dir = VlmTestData.TempDir();
        var g = VlmTestData.Group(3);
        var options = PoolOptions(down, up) with { EndpointCooldown = TimeSpan.FromSeconds(60), EndpointCooldownMax = TimeSpan.FromSeconds(60) };
        GroupJudgement first;
        using (var judge = new VlmJudge(options, new JudgementCache(dir)))
        {
            first = await judge.JudgeAsync(g);
        }

        AllScoredExactly(g, first);
        foreach (string f in Directory.GetFiles(dir, "*.json", SearchOption.AllDirectories))
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(f));
            Assert.Equal(VlmJudge.PublicEndpoint(up.BaseUrl), doc.RootElement.GetProperty("endpoint").GetString());
        }

        // The same pool listed in another order, now with the other endpoint down: every judgement comes from the cache.
        down.DefaultFault = FakeFault.None;
        up.DefaultFault = FakeFault.ServerError;
        int sent = down.Requests + up.Requests;
        using (var judge = new VlmJudge(options with { Endpoints = [up.BaseUrl, down.BaseUrl] }, new JudgementCache(dir)))
        {
            var second = await judge.JudgeAsync(g);
            Assert.Equal(first.Rewards, second.Rewards);
            Assert.Equal((0, 4), (second.Diagnostics.Usage.Calls, second.Diagnostics.Usage.CacheHits));
        }

        Assert.Equal(sent, down.Requests + up.Requests);
    }

    [Fact]
    public void ConfigTakesEndpointsOrEndpointNotBoth()
    {
        var s = JsonSerializer.Deserialize<JudgeSettings>(
            """{"kind": "vlm", "endpoints": ["http://a:8000/v1", "http://b:8000/v1"], "model": "m", "endpoint_cooldown_s": 2, "max_concurrency": 3}""")!;
        Assert.Null(s.Problem());
        using (var judge = Assert.IsType<VlmJudge>(JudgeFactory.Create(s, cacheDir: null)))
        {
            Assert.Equal(["http://a:8000/v1", "http://b:8000/v1"], judge.Options.Endpoints.Select(VlmJudge.PublicEndpoint));
            Assert.Equal((TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(300), 3), (judge.Options.EndpointCooldown, judge.Options.EndpointCooldownMax, judge.Options.MaxConcurrency));
            Assert.Contains("http://a:8000/v1,http://b:8000/v1", judge.Name, StringComparison.Ordinal);
        }

        Assert.Contains("both set", (s with { Endpoint = "http://c:8000/v1" }).Problem(), StringComparison.Ordinal);
        Assert.Contains("empty", (s with { Endpoints = [] }).Problem(), StringComparison.Ordinal);
        Assert.Contains("endpoint_cooldown_s", (s with { EndpointCooldownSeconds = 0 }).Problem(), StringComparison.Ordinal);
        var both = Assert.Throws<BadInputException>(() => JudgeFactory.Create(s with { Endpoint = "http://c:8000/v1" }, null));
        Assert.Contains("both set", both.Message, StringComparison.Ordinal);
        var twice = Assert.Throws<BadInputException>(() => JudgeFactory.Create(s with { Endpoints = ["http://a:8000/v1", "http://a:8000/v1/"] }, null));
        Assert.Contains("listed twice", twice.Message, StringComparison.Ordinal);
        var bad = Assert.Throws<BadInputException>(() => JudgeFactory.Create(s with { Endpoints = ["http://a:8000/v1", "ftp://b"] }, null));
        Assert.Contains("judge.endpoints", bad.Message, StringComparison.Ordinal);

        // One endpoint: no pool counters in the usage, the cache key and name as before.
        using var single = Assert.IsType<VlmJudge>(JudgeFactory.Create(new JudgeSettings { Kind = JudgeKind.Vlm, Endpoint = "http://a:8000/v1", Model = "m" }, null));
        Assert.Null(single.Totals.Endpoints);
        Assert.Null(single.Totals.Usage.Endpoints);
    }
}
