using System.Text.Json;
using StableLayers.Core;
using StableLayers.Judges;
using StableLayers.Model.Weights;
using StableLayers.TestSupport;
using StableLayers.Training.Grpo;
using Xunit.Abstractions;

namespace StableLayers.Training.Tests;

/// <summary>
/// Data-parallel GRPO with two ranks as two threads (<see cref="ThreadedCommunicator"/>, each rank its own trainer and
/// model) against one process on the same images. The only difference allowed is float32 summation order: one process
/// accumulates all stored timesteps' gradients into one sum, two ranks add two partial sums, so gradients differ in the
/// last bits and AdamW carries that into the adapters.
/// </summary>
public sealed class GrpoDataParallelTests : IDisposable
{
    /// <summary>
    /// Largest |LoRA(2 ranks) - LoRA(1 process)| allowed after 3 steps at lr 1e-2 (adapter values up to ~0.2; measured
    /// 5e-7 to 1.1e-6). AdamW's first steps move each value by about lr * g / |g|, so where a gradient value is near
    /// AdamW's eps the last-bit differences of the two gradient sums show up larger than float32 rounding of the values.
    /// </summary>
    private const double LoraTolerance = 1e-5;

    /// <summary>Relative tolerance on the logged values (loss, ratio, KL, grad norm, rewards), same reason.</summary>
    private const double LogTolerance = 1e-5;

    private static readonly string[] TimingKeys = ["sampling_s", "judging_s", "update_s", "update_gflops", "peak_rss_mb"];

    private readonly TempDir dir = new();
    private readonly string modelDir;
    private readonly ITestOutputHelper output;

    public GrpoDataParallelTests(ITestOutputHelper output)
    {
        this.output = output;
        modelDir = TinyRandomModel.Write(Path.Combine(dir.Path, "model"));
    }

    private static GrpoConfig Config(int steps = 3, int minibatches = 1, bool globalStd = false, int imagesPerStep = 4) => new()
    {
        Seed = 11,
        Steps = steps,
        Threads = 1,
        Sampling = new GrpoConfig.SamplingSection { GroupSize = 4, ImagesPerStep = imagesPerStep, Steps = 4, SdeWindow = 1, MinLayers = 2, MaxLayers = 3 },
        Data = new GrpoConfig.DataSection { HeldoutCount = 0 },
        Lora = new GrpoConfig.LoraSection { Rank = 4, Alpha = 4 },
        Optim = new GrpoConfig.OptimSection { LearningRate = 1e-2 },
        Grpo = new GrpoConfig.GrpoSection { ClipRange = 0.2, Minibatches = minibatches, GlobalStd = globalStd },
        Run = new GrpoConfig.RunSection { CheckpointEvery = 1, EvalEvery = 0, GridEvery = 1 },
    };

    private string Run(string name) => Path.Combine(dir.Path, name);

    private Task<GrpoRunState> Single(GrpoConfig config, string runDir, bool resume = false, int? stopAtStep = null) =>
        new GrpoTrainer(config, modelDir, runDir, new BrightBackgroundJudge(), TextWriter.Null).RunAsync(resume, stopAtStep);

    /// <summary>Two ranks; rank r's run folder is <paramref name="runDir"/> for rank 0 and a never-created path otherwise.</summary>
    private IReadOnlyList<(GrpoRunState? Result, Exception? Error)> Ranks(
        GrpoConfig config, string runDir, bool resume = false, int? stopAtStep = null, Func<int, IJudge>? judge = null, Func<int, CancellationTokenSource, IProgress<StepLog>?>? progress = null) =>
        ThreadedCommunicator.Run(2, comm =>
        {
            var cts = new CancellationTokenSource();
            return new GrpoTrainer(config, modelDir, comm.Rank == 0 ? runDir : RankFolder(runDir, comm.Rank), judge?.Invoke(comm.Rank) ?? new BrightBackgroundJudge(), TextWriter.Null)
            {
                Communicator = comm,
                Progress = progress?.Invoke(comm.Rank, cts),
            }.RunAsync(resume, stopAtStep, cts.Token);
        });

    private static string RankFolder(string runDir, int rank) => runDir + $"-rank{rank}";

    private static GrpoRunState[] Succeeded(IReadOnlyList<(GrpoRunState? Result, Exception? Error)> ranks)
    {
        Assert.All(ranks, r => Assert.True(r.Error is null, r.Error?.ToString()));
        return [.. ranks.Select(r => r.Result!)];
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(2, true)]
    public async Task TwoRanksTrainTheSameLoraAndLogTheSameLinesAsOneProcess(int minibatches, bool globalStd)
    {
        var config = Config(minibatches: minibatches, globalStd: globalStd);
        string one = Run("one"), two = Run("two");
        await Single(config, one);
        var states = Succeeded(Ranks(config, two));
        Assert.All(states, s => Assert.Equal(3, s.Step));

        double maxDiff = MaxAbsDiff(Path.Combine(one, GrpoRunFolder.LoraFile), Path.Combine(two, GrpoRunFolder.LoraFile), out double maxAbs);
        output.WriteLine($"minibatches {minibatches}, global_std {globalStd}: max |LoRA 2 ranks - 1 process| = {maxDiff:E3} (max |LoRA| {maxAbs:E3})");
        Assert.True(maxDiff <= LoraTolerance, $"LoRA differs by {maxDiff:E3}");

        var a = Lines(one);
        var b = Lines(two);
        Assert.Equal(3, a.Count);
        Assert.Equal(a.Count, b.Count);
        double worst = 0;
        for (int i = 0; i < a.Count; i++)
        {
            double step = CompareLine(a[i], b[i], $"step {i}");
            output.WriteLine($"step {i}: largest relative difference of a logged value {step:E3}");
            worst = Math.Max(worst, step);
        }

        output.WriteLine($"largest relative difference of a logged value: {worst:E3}");
        Assert.True(a.All(l => l.GetProperty("grad_norm").GetDouble() > 0), "no step trained: the comparison would prove nothing");

        // Only rank 0 writes: rank 1's folder was never created.
        Assert.False(Directory.Exists(RankFolder(two, 1)));
        var state = JsonSerializer.Deserialize<GrpoRunState>(File.ReadAllText(Path.Combine(two, "checkpoint", "state.json")))!;
        Assert.Equal(2, state.WorldSize);
    }

    [Fact]
    public async Task ResumeWithAnotherWorldSizeIsRefusedNamingBothSizes()
    {
        string one = Run("resize-one"), two = Run("resize-two");
        await Single(Config(steps: 2), one, stopAtStep: 1);
        foreach (var (_, error) in Ranks(Config(steps: 2), one, resume: true))
        {
            var e = Assert.IsType<BadInputException>(error);
            Assert.Contains("written by 1 rank(s) and this run has 2", e.Message);
        }

        Succeeded(Ranks(Config(steps: 2), two, stopAtStep: 1));
        var refused = await Assert.ThrowsAsync<BadInputException>(() => Single(Config(steps: 2), two, resume: true));
        Assert.Contains("written by 2 rank(s) and this run has 1", refused.Message);
        Assert.Single(Lines(two));
    }

    [Fact]
    public void AStopOnOneRankStopsEveryRankAfterTheSameStep()
    {
        string run = Run("stop");
        // Rank 1 alone is asked to stop once its step 1 (0-based) is done; rank 0 never is.
        var states = Succeeded(Ranks(Config(steps: 10, imagesPerStep: 2), run, progress: (rank, cts) =>
            rank == 1 ? new SyncProgress(s => { if (s.Step == 1) cts.Cancel(); }) : null));
        Assert.All(states, s => Assert.Equal(2, s.Step));
        Assert.Equal(2, JsonSerializer.Deserialize<GrpoRunState>(File.ReadAllText(Path.Combine(run, "checkpoint", "state.json")))!.Step);
        Assert.Equal(2, Lines(run).Count);
    }

    [Fact]
    public void ResumeOnTwoRanksContinuesExactly()
    {
        string straight = Run("straight"), split = Run("split");
        var config = Config(steps: 3, minibatches: 2);
        Succeeded(Ranks(config, straight));
        Succeeded(Ranks(config, split, stopAtStep: 1));
        // Rank 1 has no run folder: it resumes from the checkpoint bytes rank 0 broadcasts.
        var states = Succeeded(Ranks(config, split, resume: true));
        Assert.All(states, s => Assert.Equal(3, s.Step));
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, GrpoRunFolder.LoraFile)), File.ReadAllBytes(Path.Combine(split, GrpoRunFolder.LoraFile)));
        var a = Lines(straight);
        var b = Lines(split);
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal(0.0, CompareLine(a[i], b[i], $"step {i}"));
        }
    }

    [Fact]
    public void AFailureOnOneRankStopsTheOtherWithItsMessage()
    {
        var ranks = Ranks(Config(steps: 3, imagesPerStep: 2), Run("fail"), judge: rank => rank == 1 ? new FailingJudge(failAtCall: 2) : new BrightBackgroundJudge());
        Assert.All(ranks, r => Assert.Contains("rank 1 of 2 failed, stopping every rank: judge server gone", r.Error?.Message ?? "no error"));
        Assert.Single(Lines(Run("fail")));
    }

    [Fact]
    public void ImagesThatDoNotSplitOverTheRanksAreRefusedOnEveryRank()
    {
        foreach (var (_, error) in Ranks(Config(imagesPerStep: 3), Run("odd")))
        {
            var e = Assert.IsType<BadInputException>(error);
            Assert.Contains("3 images per step do not split evenly over 2 ranks", e.Message);
        }

        Assert.False(Directory.Exists(Run("odd")));
    }

    /// <summary>|a - b| over every adapter value of two LoRA files; <paramref name="maxAbs"/> = largest |a|.</summary>
    private static double MaxAbsDiff(string a, string b, out double maxAbs)
    {
        using var fa = SafetensorsFile.Open(a);
        using var fb = SafetensorsFile.Open(b);
        Assert.Equal(fa.Entries.Select(e => e.Name), fb.Entries.Select(e => e.Name));
        double diff = 0;
        maxAbs = 0;
        foreach (var e in fa.Entries)
        {
            using var ta = fa.Read(e.Name);
            using var tb = fb.Read(e.Name);
            diff = Math.Max(diff, ta.sub(tb).abs().max().item<float>());
            maxAbs = Math.Max(maxAbs, ta.abs().max().item<float>());
        }

        return diff;
    }

    private static List<JsonElement> Lines(string runDir) =>
        [.. File.ReadAllLines(Path.Combine(runDir, GrpoRunFolder.MetricsFile)).Select(l => JsonDocument.Parse(l).RootElement)];

    /// <summary>Compares two metrics lines key by key (timings left out); returns the largest relative difference of a number.</summary>
    private static double CompareLine(JsonElement a, JsonElement b, string where)
    {
        Assert.Equal(a.EnumerateObject().Select(p => p.Name), b.EnumerateObject().Select(p => p.Name));
        double worst = 0;
        foreach (var p in a.EnumerateObject().Where(p => !TimingKeys.Contains(p.Name)))
        {
            worst = Math.Max(worst, CompareValue(p.Value, b.GetProperty(p.Name), $"{where} {p.Name}"));
        }

        return worst;
    }

    private static double CompareValue(JsonElement a, JsonElement b, string where)
    {
        Assert.True(a.ValueKind == b.ValueKind, $"{where}: {a} vs {b}");
        switch (a.ValueKind)
        {
            case JsonValueKind.Number:
                double x = a.GetDouble(), y = b.GetDouble();
                double rel = x == y ? 0 : Math.Abs(x - y) / Math.Max(Math.Max(Math.Abs(x), Math.Abs(y)), 1e-3);
                Assert.True(rel <= LogTolerance, $"{where}: {x:R} vs {y:R}");
                return rel;
            case JsonValueKind.Array:
                Assert.Equal(a.GetArrayLength(), b.GetArrayLength());
                return a.EnumerateArray().Zip(b.EnumerateArray()).Select((v, i) => CompareValue(v.First, v.Second, $"{where}[{i}]")).DefaultIfEmpty(0).Max();
            case JsonValueKind.Object:
                return CompareLine(a, b, where);
            default:
                Assert.Equal(a.ToString(), b.ToString());
                return 0;
        }
    }

    public void Dispose() => dir.Dispose();

    private sealed class SyncProgress(Action<StepLog> report) : IProgress<StepLog>
    {
        public void Report(StepLog value) => report(value);
    }

    /// <summary>A judge whose server goes away at its <paramref name="failAtCall"/>-th group (1-based).</summary>
    private sealed class FailingJudge(int failAtCall) : IJudge
    {
        private readonly BrightBackgroundJudge inner = new();
        private int calls;

        public string Name => "test/failing";

        public Task<GroupJudgement> JudgeAsync(JudgeGroup group, CancellationToken cancellationToken = default) =>
            ++calls >= failAtCall ? throw new HttpRequestException("judge server gone") : inner.JudgeAsync(group, cancellationToken);
    }
}
