using System.Diagnostics;
using StableLayers.Core.Layers;
using StableLayers.Metrics;

namespace StableLayers.Judges.Rubric;

/// <summary>
/// The offline, deterministic judge of docs/JUDGE.md: phase 1 = the five <see cref="RubricCriteria"/> rounded to
/// integer buckets 0..5 (so it shows the tie problem a VLM has); phase 2 (when <see cref="JudgeOptions.Calibrate"/>)
/// = the same values unrounded, which restores the within-group ordering. A candidate of the wrong size, with no
/// layers, or whose measurement fails is recorded as a failed judgement; the other candidates are still scored.
/// </summary>
public sealed class RubricJudge : IJudge
{
    /// <summary>v3: a blank or glazed foreground layer scores 0 in the per-layer terms (matte, separation) and counts in the invented-colour mean, so emptying a poor layer never pays.</summary>
    public const string JudgeName = "rubric/v3";

    /// <param name="options">Calibration and reward weights; defaults to <see cref="JudgeOptions"/>' defaults.</param>
    /// <param name="maxDegreeOfParallelism">Candidates measured at once (1 = on the calling thread; results do not depend on it).</param>
    public RubricJudge(JudgeOptions? options = null, int maxDegreeOfParallelism = 1)
    {
        if (maxDegreeOfParallelism == 0 || maxDegreeOfParallelism < -1)
        {
            throw new ArgumentOutOfRangeException(nameof(maxDegreeOfParallelism), "use -1 (all cores) or a positive count");
        }

        Options = options ?? new JudgeOptions();
        MaxDegreeOfParallelism = maxDegreeOfParallelism;
    }

    public string Name => JudgeName;

    public JudgeOptions Options { get; }

    public int MaxDegreeOfParallelism { get; }

    public Task<GroupJudgement> JudgeAsync(JudgeGroup group, CancellationToken cancellationToken = default) =>
        Task.FromResult(Judge(group, cancellationToken));

    /// <summary>Judges the group synchronously (the rubric does no I/O).</summary>
    public GroupJudgement Judge(JudgeGroup group, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(group.Input);
        ArgumentNullException.ThrowIfNull(group.Candidates);
        if (group.Candidates.Count == 0)
        {
            throw new ArgumentException($"{group.Id}: a judge group needs at least one candidate", nameof(group));
        }

        var clock = Stopwatch.StartNew();
        var input = LayerPlanes.RgbPlane(group.Input);
        var results = new CandidateJudgement[group.Candidates.Count];
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = MaxDegreeOfParallelism, CancellationToken = cancellationToken };
        Parallel.For(0, results.Length, parallel, i => results[i] = JudgeOne(group, i, input));

        var phase1Rewards = results.Select(r => r.Failed ? (double?)null : r.Phase1Reward).ToArray();
        int failures = results.Count(r => r.Failed);
        var diagnostics = new GroupDiagnostics(
            GroupTies.Count(phase1Rewards),
            GroupTies.Count(results.Select(r => r.Failed ? null : r.Reward)),
            failures,
            clock.Elapsed.TotalMilliseconds,
            new JudgeUsage(Failures: failures));
        return new GroupJudgement(group.Id, Name, results, diagnostics);
    }

    private CandidateJudgement JudgeOne(JudgeGroup group, int index, float[] input)
    {
        LayerStack? candidate = group.Candidates[index];
        string label = CandidateLabels.Label(index);
        if (candidate is null || candidate.Count == 0)
        {
            return CandidateJudgement.Failure(index, $"{group.Id}: candidate {label} has no layers");
        }

        if (candidate.Width != group.Input.Width || candidate.Height != group.Input.Height)
        {
            return CandidateJudgement.Failure(
                index, $"{group.Id}: candidate {label} is {candidate.Width}x{candidate.Height}, the input is {group.Input.Width}x{group.Input.Height}");
        }

        try
        {
            var raw = RubricCriteria.Evaluate(input, group.Input.Width, group.Input.Height, candidate).Scores;
            return CandidateJudgement.Scored(index, raw.Bucketed(), Options.Calibrate ? raw : null, Options.Weights);
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
        {
            return CandidateJudgement.Failure(index, $"{group.Id}: candidate {label} could not be measured: {ex.Message}");
        }
    }
}
