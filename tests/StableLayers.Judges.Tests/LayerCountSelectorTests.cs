using StableLayers.Core;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges.LayerCount;
using StableLayers.Judges.Rubric;
using StableLayers.TestSupport;
using Xunit;

namespace StableLayers.Judges.Tests;

public sealed class LayerCountSelectorTests
{
    private const int Size = 48;

    /// <summary>A judge whose reward is a given function of each candidate's layer count (phase 1 only).</summary>
    private sealed class CountJudge(Func<int, double?> reward) : IJudge
    {
        public int Calls { get; private set; }

        public IReadOnlyList<int> LastCounts { get; private set; } = [];

        public string Name => "fake/count";

        public Task<GroupJudgement> JudgeAsync(JudgeGroup group, CancellationToken cancellationToken = default)
        {
            Calls++;
            LastCounts = group.Candidates.Select(c => c.Count).ToArray();
            var candidates = group.Candidates.Select((c, i) => reward(c.Count) is double r
                ? CandidateJudgement.Scored(i, Uniform(r), null, RewardWeights.Equal)
                : CandidateJudgement.Failure(i, $"no opinion on {c.Count} layers")).ToArray();
            return Task.FromResult(new GroupJudgement(group.Id, Name, candidates, new GroupDiagnostics(0, 0, candidates.Count(c => c.Failed), 0, JudgeUsage.None)));
        }

        private static CriterionScores Uniform(double r) => new(r, r, r, r, r);
    }

    /// <summary>Background plus <paramref name="objects"/> distinct squares, then <paramref name="copies"/> copies of the first square and <paramref name="blanks"/> empty layers.</summary>
    private static LayerStack Stack(int objects, int copies = 0, int blanks = 0)
    {
        var layers = new List<RgbaImage> { RgbaImage.Filled(Size, Size, 240, 230, 200, 255) };
        for (int i = 0; i < objects; i++)
        {
            int x = 2 + (i % 4 * 11), y = 2 + (i / 4 * 11);
            layers.Add(TestImages.Rect(Size, Size, x, y, x + 9, y + 9, (byte)(40 * i), 80, (byte)(200 - (30 * i)), 255));
        }

        for (int i = 0; i < copies; i++)
        {
            layers.Add(TestImages.Rect(Size, Size, 2, 2, 11, 11, 10, 10, 10, 255));
        }

        for (int i = 0; i < blanks; i++)
        {
            layers.Add(new RgbaImage(Size, Size));
        }

        return new LayerStack(layers.ToArray());
    }

    /// <summary>A fake decomposer: <paramref name="make"/>(n) for each requested count, recording the calls.</summary>
    private static (LayerDecomposer Decompose, List<int> Calls) Fake(Func<int, LayerStack> make)
    {
        var calls = new List<int>();
        return ((n, _) =>
        {
            calls.Add(n);
            return make(n);
        }, calls);
    }

    private static RgbaImage Input => Stack(3).FlattenOnWhite();

    [Fact]
    public async Task Judge_method_decomposes_every_count_once_and_picks_the_highest_reward()
    {
        var judge = new CountJudge(n => 1.0 - (0.1 * Math.Abs(n - 5)));
        var (decompose, calls) = Fake(n => Stack(n - 1));
        var progress = new List<LayerCountProgress>();
        var s = await new LayerCountSelector(judge).SelectAsync(Input, new LayerCountSettings { Range = new(2, 8) }, decompose, new SyncProgress(progress.Add));
        Assert.Equal(5, s.Layers);
        Assert.Equal(5, s.Stack.Count);
        Assert.Equal([2, 3, 4, 5, 6, 7, 8], calls);
        Assert.Equal(1, judge.Calls);
        Assert.Equal([2, 3, 4, 5, 6, 7, 8], judge.LastCounts);
        Assert.Equal([2, 3, 4, 5, 6, 7, 8], s.Candidates.Select(c => c.Layers));
        Assert.Equal(0.8, s.Candidates[1].Reward!.Value, 9);
        Assert.Equal(LayerCountMethod.Judge, s.Method);
        Assert.Equal([LayerCountStage.Decomposing, LayerCountStage.Judging, LayerCountStage.Done], progress.Select(p => p.Stage).Distinct());
        Assert.Equal(7, progress.Count(p => p.Stage == LayerCountStage.Decomposing));
        Assert.Equal(5, progress[^1].Layers);
    }

    [Theory]
    [InlineData(2, 10, 10)]
    [InlineData(2, 10, 2)]
    [InlineData(3, 3, 3)]
    public async Task Judge_method_reaches_both_ends_of_the_range(int min, int max, int peak)
    {
        var judge = new CountJudge(n => -Math.Abs(n - peak));
        var (decompose, _) = Fake(n => Stack(n - 1));
        var s = await new LayerCountSelector(judge).SelectAsync(Input, new LayerCountSettings { Range = new(min, max) }, decompose);
        Assert.Equal(peak, s.Layers);
    }

    [Fact]
    public async Task Ties_go_to_fewer_layers_and_failed_judgements_never_win()
    {
        // 6 and 4 tie at the top; 7 "would" win but its judgement failed.
        var judge = new CountJudge(n => n switch { 7 => null, 4 or 6 => 0.9, _ => 0.5 });
        var (decompose, _) = Fake(n => Stack(n - 1));
        var s = await new LayerCountSelector(judge).SelectAsync(Input, new LayerCountSettings { Range = new(2, 8) }, decompose);
        Assert.Equal(4, s.Layers);
        Assert.Null(s.Candidates.Single(c => c.Layers == 7).Reward);
        Assert.Equal(-1, LayerCountSelector.Best([2, 3], [null, double.NaN]));
        Assert.Equal(1, LayerCountSelector.Best([5, 3, 4], [0.7, 0.7, 0.6]));
    }

    [Fact]
    public async Task A_judge_that_scores_nothing_is_an_error_that_says_why()
    {
        var judge = new CountJudge(_ => null);
        var (decompose, _) = Fake(n => Stack(n - 1));
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => new LayerCountSelector(judge).SelectAsync(Input, new LayerCountSettings(), decompose));
        Assert.Contains("none of the 7 candidates", e.Message, StringComparison.Ordinal);
        Assert.Contains("no opinion on 2 layers", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1, 8, "--min-layers: must be 2..16, got 1")]
    [InlineData(2, 17, "--max-layers: must be 2..16, got 17")]
    [InlineData(0, 0, "--min-layers: must be 2..16, got 0")]
    [InlineData(6, 3, "--min-layers: 6 is above --max-layers 3")]
    public async Task Bad_ranges_are_one_line_errors_naming_the_option_before_any_work(int min, int max, string message)
    {
        var (decompose, calls) = Fake(n => Stack(n - 1));
        var e = await Assert.ThrowsAsync<BadInputException>(() =>
            new LayerCountSelector(new CountJudge(_ => 1)).SelectAsync(Input, new LayerCountSettings { Range = new(min, max) }, decompose));
        Assert.Equal(message, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Empty(calls);
    }

    [Fact]
    public void Default_range_is_2_to_8_and_the_limits_are_valid()
    {
        Assert.Equal(new LayerCountRange(2, 8), LayerCountRange.Default);
        new LayerCountRange(2, 16).Validate();
        new LayerCountRange(10, 10).Validate();
        Assert.Equal([9, 10], new LayerCountRange(9, 10).Values);
    }

    [Theory]
    [InlineData(3, 0, 0, 4)]
    [InlineData(2, 3, 0, 3)]
    [InlineData(1, 0, 4, 2)]
    [InlineData(4, 2, 3, 5)]
    [InlineData(0, 0, 5, 1)]
    public void Distinct_layers_skip_blank_layers_and_copies(int objects, int copies, int blanks, int expected)
    {
        var stack = Stack(objects, copies, blanks);
        Assert.Equal(expected, DistinctLayers.Count(stack, stack.FlattenOnWhite()));
    }

    [Theory]
    [InlineData(10, 4, 4)]
    [InlineData(8, 1, 2)]
    [InlineData(6, 6, 6)]
    [InlineData(5, 9, 5)]
    public async Task Count_method_decomposes_at_the_maximum_then_at_the_distinct_count(int max, int distinct, int expected)
    {
        // At the maximum: (distinct - 1) objects, the rest copies of the first object (when there is one) and blanks;
        // at other counts: plain objects.
        int d = Math.Min(distinct, max), copies = d >= 2 ? (max - d) / 2 : 0;
        var (decompose, calls) = Fake(n => n == max ? Stack(d - 1, copies, blanks: max - d - copies) : Stack(n - 1));
        var s = await new LayerCountSelector(null).SelectAsync(Input, new LayerCountSettings { Range = new(2, max), Method = LayerCountMethod.Count }, decompose);
        Assert.Equal(expected, s.Layers);
        Assert.Equal(expected, s.Stack.Count);
        Assert.Equal(expected == max ? [max] : [max, expected], calls);
        Assert.Equal(Math.Min(distinct, max), s.Candidates[0].DistinctLayers);
        Assert.Null(s.Judgement);
    }

    [Fact]
    public async Task Cancellation_stops_between_decompositions_and_reaches_the_decomposer()
    {
        using var cts = new CancellationTokenSource();
        var seen = new List<CancellationToken>();
        var calls = 0;
        LayerStack Decompose(int n, CancellationToken ct)
        {
            seen.Add(ct);
            if (++calls == 2)
            {
                cts.Cancel();
            }

            return Stack(n - 1);
        }

        var judge = new CountJudge(_ => 1);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            new LayerCountSelector(judge).SelectAsync(Input, new LayerCountSettings(), Decompose, null, cts.Token));
        Assert.Equal(2, calls);
        Assert.Equal(0, judge.Calls);
        Assert.All(seen, ct => Assert.Equal(cts.Token, ct));
    }

    [Fact]
    public async Task A_decomposer_returning_the_wrong_count_is_refused()
    {
        var (decompose, _) = Fake(n => Stack(2));
        await Assert.ThrowsAsync<InvalidOperationException>(() =>
            new LayerCountSelector(new CountJudge(_ => 1)).SelectAsync(Input, new LayerCountSettings { Range = new(2, 4) }, decompose));
    }

    [Theory]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public async Task Rubric_judge_never_chooses_the_truth_padded_with_empty_layers(int objects)
    {
        // Counts above the truth get the true layers plus blank ones: what a model asked for too many layers does at worst.
        var truth = Stack(objects);
        var input = truth.FlattenOnWhite();
        var (decompose, _) = Fake(n => n <= truth.Count ? Stack(n - 1) : Stack(objects, blanks: n - truth.Count));
        var s = await new LayerCountSelector(new RubricJudge()).SelectAsync(input, new LayerCountSettings { Range = new(2, 10) }, decompose);
        Assert.True(s.Layers <= truth.Count, $"chose {s.Layers} for a {truth.Count}-layer design");
        var atTruth = s.Candidates.Single(c => c.Layers == truth.Count).Reward!.Value;
        Assert.All(s.Candidates.Where(c => c.Layers > truth.Count), c => Assert.True(c.Reward < atTruth, $"{c.Layers}: {c.Reward} >= {atTruth}"));
    }

    private sealed class SyncProgress(Action<LayerCountProgress> report) : IProgress<LayerCountProgress>
    {
        public void Report(LayerCountProgress value) => report(value);
    }
}
