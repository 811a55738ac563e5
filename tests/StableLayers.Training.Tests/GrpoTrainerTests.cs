using System.Text.Json;
using StableLayers.Core.Layers;
using StableLayers.Data.Synthesis;
using StableLayers.Judges;
using StableLayers.Model;
using StableLayers.Model.Text;
using StableLayers.Model.Transformer;
using StableLayers.Model.Vae;
using StableLayers.TestSupport;
using StableLayers.Training.Grpo;

namespace StableLayers.Training.Tests;

/// <summary>A simple, continuous reward for trainer tests: how bright the background layer is.</summary>
internal sealed class BrightBackgroundJudge : IJudge
{
    public string Name => "test/bright-background";

    public int Calls { get; private set; }

    public Task<GroupJudgement> JudgeAsync(JudgeGroup group, CancellationToken cancellationToken = default)
    {
        Calls++;
        var candidates = group.Candidates.Select((c, i) =>
        {
            var px = c[0].Pixels;
            double sum = 0;
            for (int p = 0; p < px.Length; p += 4)
            {
                sum += px[p] + px[p + 1] + px[p + 2];
            }

            double v = sum / (px.Length / 4 * 3 * 255.0);
            var s = new CriterionScores(v, v, v, v, v);
            return CandidateJudgement.Scored(i, s, null, RewardWeights.Equal);
        }).ToList();
        var rewards = candidates.Select(c => c.Reward).ToList();
        return Task.FromResult(new GroupJudgement(group.Id, Name, candidates,
            new GroupDiagnostics(GroupTies.Count(rewards), GroupTies.Count(rewards), 0, 0, JudgeUsage.None)));
    }
}

/// <summary>A 16 px random model of the tiny architecture (one block), saved as a model folder.</summary>
internal static class TinyRandomModel
{
    public static string Write(string dir)
    {
        var config = new LayeredModelConfig
        {
            Name = "test",
            Resolution = 16,
            Transformer = TransformerConfig.Tiny(layers: 1, heads: 2, headDim: 16, textDim: 16, inChannels: 16, outChannels: 4),
            Vae = VaeConfig.Tiny(baseDim: 8, zDim: 4, dimMult: [1, 2]),
            TextEncoder = new TinyTextEncoderConfig { HiddenSize = 16, NumHeads = 2, NumLayers = 1 },
        };
        var captions = new SynthGenerator(new SynthOptions { Size = 16 }).Generate(0, 20).Select(s => s.Caption);
        using var model = LayeredModel.Create(config, WordTokenizer.Build(captions), seed: 3);
        model.Save(dir);
        return dir;
    }
}

public sealed class GrpoTrainerTests : IDisposable
{
    private readonly TempDir dir = new();
    private readonly string modelDir;

    public GrpoTrainerTests() => modelDir = TinyRandomModel.Write(Path.Combine(dir.Path, "model"));

    private static GrpoConfig Config(RatioMode ratioMode = RatioMode.SumRescale, int steps = 2, double lr = 3e-4) => new()
    {
        Seed = 5,
        Steps = steps,
        Threads = 1,
        Sampling = new GrpoConfig.SamplingSection { GroupSize = 3, ImagesPerStep = 2, Steps = 4, SdeWindow = 1, MinLayers = 2, MaxLayers = 3, EvalSteps = 2 },
        Data = new GrpoConfig.DataSection { HeldoutCount = 2 },
        Lora = new GrpoConfig.LoraSection { Rank = 4, Alpha = 4 },
        Optim = new GrpoConfig.OptimSection { LearningRate = lr },
        Grpo = new GrpoConfig.GrpoSection { RatioMode = ratioMode, ClipRange = 0.2 },
        Run = new GrpoConfig.RunSection { CheckpointEvery = 1, EvalEvery = 100, GridEvery = 1 },
    };

    private static List<StepLog> ReadLog(string runDir) =>
        File.ReadAllLines(Path.Combine(runDir, GrpoRunFolder.MetricsFile)).Select(l => JsonSerializer.Deserialize<StepLog>(l)!).ToList();

    [Theory]
    [InlineData(RatioMode.SumRescale)]
    [InlineData(RatioMode.GuardMean)]
    [InlineData(RatioMode.None)]
    public async Task FirstUpdateIsExactlyOnPolicyInEveryRatioMode(RatioMode mode)
    {
        string run = Path.Combine(dir.Path, "run-" + mode);
        await new GrpoTrainer(Config(mode, steps: 2), modelDir, run, new BrightBackgroundJudge(), TextWriter.Null).RunAsync(resume: false);
        var log = ReadLog(run);
        Assert.Equal(2, log.Count);
        foreach (var step in log)
        {
            Assert.NotEmpty(step.FirstLogRatios);
            Assert.All(step.FirstLogRatios, r => Assert.Equal(0.0, r));
            Assert.True(step.RewardStd > 0);
            Assert.True(step.GradNorm > 0, $"step {step.Step}: no gradient reached the adapters");
        }

        Assert.True(File.Exists(Path.Combine(run, GrpoRunFolder.LoraFile)));
        Assert.True(File.Exists(Path.Combine(run, "grids", "step_00002.png")));
        // Evaluations: the base (step 0) and the final step.
        Assert.Equal([0, 2], File.ReadAllLines(Path.Combine(run, GrpoRunFolder.EvalFile)).Select(l => JsonSerializer.Deserialize<EvalLog>(l)!.Step));
    }

    [Fact]
    public async Task ResumeContinuesExactly()
    {
        string straight = Path.Combine(dir.Path, "straight"), split = Path.Combine(dir.Path, "split");
        var config = Config(steps: 4, lr: 1e-2);
        await new GrpoTrainer(config, modelDir, straight, new BrightBackgroundJudge(), TextWriter.Null).RunAsync(resume: false);
        await new GrpoTrainer(config, modelDir, split, new BrightBackgroundJudge(), TextWriter.Null).RunAsync(resume: false, stopAtStep: 2);
        var state = await new GrpoTrainer(config, modelDir, split, new BrightBackgroundJudge(), TextWriter.Null).RunAsync(resume: true);
        Assert.Equal(4, state.Step);
        Assert.Equal(ReadLog(straight).Select(s => s.GradNorm), ReadLog(split).Select(s => s.GradNorm));
        byte[] a = File.ReadAllBytes(Path.Combine(straight, GrpoRunFolder.LoraFile)), b = File.ReadAllBytes(Path.Combine(split, GrpoRunFolder.LoraFile));
        Assert.Equal(a, b);
        Assert.Equal(ReadLog(straight).Select(s => s.RewardMean), ReadLog(split).Select(s => s.RewardMean));
        Assert.NotEqual(0.0, ReadLog(straight)[3].GradNorm);
    }

    [Fact]
    public async Task ANewRunRefusesAFolderThatHoldsARun()
    {
        string run = Path.Combine(dir.Path, "twice");
        await new GrpoTrainer(Config(steps: 1), modelDir, run, new BrightBackgroundJudge(), TextWriter.Null).RunAsync(resume: false);
        var e = await Assert.ThrowsAsync<StableLayers.Core.BadInputException>(() =>
            new GrpoTrainer(Config(steps: 1), modelDir, run, new BrightBackgroundJudge(), TextWriter.Null).RunAsync(resume: false));
        Assert.Contains("--resume", e.Message);
    }

    public void Dispose() => dir.Dispose();
}

/// <summary>Fails chosen candidates (a VLM that timed out), scores the rest like <see cref="BrightBackgroundJudge"/>.</summary>
internal sealed class FlakyJudge(Func<int, bool> fails) : IJudge
{
    private readonly BrightBackgroundJudge inner = new();

    public string Name => "test/flaky";

    public async Task<GroupJudgement> JudgeAsync(JudgeGroup group, CancellationToken cancellationToken = default)
    {
        var j = await inner.JudgeAsync(group, cancellationToken);
        var candidates = j.Candidates.Select(c => fails(c.Index) ? CandidateJudgement.Failure(c.Index, "timed out") : c).ToList();
        return j with { Candidates = candidates, Diagnostics = j.Diagnostics with { Failures = candidates.Count(c => c.Failed) } };
    }
}

public sealed class GrpoFailureTests : IDisposable
{
    private readonly TempDir dir = new();
    private readonly string modelDir;

    public GrpoFailureTests() => modelDir = TinyRandomModel.Write(Path.Combine(dir.Path, "model"));

    private static GrpoConfig Config(int steps, double lr = 3e-4, int maxNonFinite = 3) => new()
    {
        Seed = 1,
        Steps = steps,
        Threads = 1,
        Sampling = new GrpoConfig.SamplingSection { GroupSize = 3, ImagesPerStep = 2, Steps = 4, SdeWindow = 1, MinLayers = 2, MaxLayers = 2 },
        Data = new GrpoConfig.DataSection { HeldoutCount = 0 },
        Lora = new GrpoConfig.LoraSection { Rank = 2, Alpha = 2 },
        Optim = new GrpoConfig.OptimSection { LearningRate = lr, GradClip = 1e30 },
        Grpo = new GrpoConfig.GrpoSection { ClipRange = 0.2, MaxNonFiniteInRow = maxNonFinite, Minibatches = 1 },
        Run = new GrpoConfig.RunSection { CheckpointEvery = 1, EvalEvery = 0, GridEvery = 0 },
    };

    private static List<StepLog> ReadLog(string runDir) =>
        File.ReadAllLines(Path.Combine(runDir, GrpoRunFolder.MetricsFile)).Select(l => JsonSerializer.Deserialize<StepLog>(l)!).ToList();

    [Fact]
    public async Task FailedJudgementsDropCandidatesAndGroupsButTrainingGoesOn()
    {
        string run = Path.Combine(dir.Path, "flaky");
        // Candidate 0 of every group fails: groups of 3 keep 2 and still train.
        await new GrpoTrainer(Config(2), modelDir, run, new FlakyJudge(i => i == 0), TextWriter.Null).RunAsync(resume: false);
        var log = ReadLog(run);
        Assert.All(log, s => Assert.Equal(2, s.JudgeFailures));
        Assert.All(log, s => Assert.Equal(0, s.DroppedGroups));
        Assert.All(log, s => Assert.True(s.GradNorm > 0));

        // Two of three fail: every group is dropped (fewer than 2 left), nothing is trained, nothing is scored 0.
        string run2 = Path.Combine(dir.Path, "flaky2");
        await new GrpoTrainer(Config(1), modelDir, run2, new FlakyJudge(i => i < 2), TextWriter.Null).RunAsync(resume: false);
        var s2 = Assert.Single(ReadLog(run2));
        Assert.Equal(2, s2.DroppedGroups);
        Assert.Equal(0, s2.GradNorm);
    }

    [Fact]
    public async Task NonFiniteStepsAreSkippedAndTooManyInARowStopTheRunWithACheckpoint()
    {
        string run = Path.Combine(dir.Path, "nan");
        // A learning rate of 1e30 makes the adapters overflow after the first update; later losses are not finite.
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            new GrpoTrainer(Config(10, lr: 1e30, maxNonFinite: 2), modelDir, run, new BrightBackgroundJudge(), TextWriter.Null).RunAsync(resume: false));
        Assert.Contains("non-finite", e.Message);
        var log = ReadLog(run);
        Assert.True(log.Count < 10);
        Assert.True(log[^1].NonFinite && log[^2].NonFinite);
        Assert.False(log[0].NonFinite);
        Assert.True(File.Exists(Path.Combine(run, "checkpoint", "state.json")));
    }

    [Fact]
    public async Task AnUnwritableRunFolderFailsBeforeTraining()
    {
        string file = Path.Combine(dir.Path, "a-file");
        File.WriteAllText(file, "x");
        var judge = new BrightBackgroundJudge();
        var e = await Assert.ThrowsAsync<StableLayers.Core.BadInputException>(() =>
            new GrpoTrainer(Config(1), modelDir, Path.Combine(file, "run"), judge, TextWriter.Null).RunAsync(resume: false));
        Assert.Contains("not writable", e.Message);
        Assert.Equal(0, judge.Calls);
    }

    [Fact]
    public async Task CancellationCheckpointsTheLastFinishedStep()
    {
        string run = Path.Combine(dir.Path, "cancel");
        using var cts = new CancellationTokenSource();
        var trainer = new GrpoTrainer(Config(50), modelDir, run, new BrightBackgroundJudge(), TextWriter.Null)
        {
            Progress = new SyncProgress(s => { if (s.Step == 1) cts.Cancel(); }),
        };
        var state = await trainer.RunAsync(resume: false, cancel: cts.Token);
        Assert.Equal(2, state.Step);
        var saved = JsonSerializer.Deserialize<GrpoRunState>(File.ReadAllText(Path.Combine(run, "checkpoint", "state.json")))!;
        Assert.Equal(2, saved.Step);
    }

    private sealed class SyncProgress(Action<StepLog> report) : IProgress<StepLog>
    {
        public void Report(StepLog value) => report(value);
    }

    public void Dispose() => dir.Dispose();
}
