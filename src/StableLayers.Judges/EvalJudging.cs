using StableLayers.Core;
using StableLayers.Core.Formats;
using StableLayers.Core.Imaging;
using StableLayers.Metrics;
using StableLayers.Metrics.Evaluation;

namespace StableLayers.Judges;

/// <summary>
/// Adds the judge's scores to an evaluation (<c>eval --judge</c>): each evaluated sample is judged on its own, a group of
/// one, as the trainer's held-out evaluation judges it, against the image that was decomposed. Fills
/// <see cref="SampleMetrics.JudgeReward"/> and <see cref="SampleMetrics.JudgeBackgroundInpainting"/>, so the judge's
/// numbers get the same means and bootstrap intervals as every other metric.
/// </summary>
public static class EvalJudging
{
    /// <param name="report">The evaluation of <paramref name="predDir"/> (<see cref="EvalRunner.Run"/>).</param>
    /// <param name="gtDir">Ground truth, when the evaluation had it: its composite is then the judged input, as in <c>eval</c>.</param>
    /// <param name="maxParallel">Samples judged at once.</param>
    /// <returns>The report with the judge's scores, and the samples whose judgement failed (their scores stay null, never 0).</returns>
    public static async Task<(EvalReport Report, IReadOnlyList<EvalFailure> JudgeFailures)> AddScoresAsync(
        EvalReport report, string predDir, string? gtDir, IJudge judge, int maxParallel = 4, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentNullException.ThrowIfNull(judge);
        var predPaths = EvalRunner.Samples(predDir);
        var gtPaths = gtDir is null ? null : EvalRunner.Samples(gtDir);
        var judged = new SampleMetrics[report.Samples.Count];
        var failures = new System.Collections.Concurrent.ConcurrentBag<EvalFailure>();
        await Parallel.ForAsync(0, report.Samples.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, maxParallel), CancellationToken = cancel }, async (i, ct) =>
        {
            var sample = report.Samples[i];
            judged[i] = sample;
            try
            {
                string predPath = predPaths[sample.Id];
                var stack = LayeredFile.Read(predPath);
                var input = InputOf(predPath, gtPaths?.GetValueOrDefault(sample.Id))
                    ?? throw new BadInputException(predPath, "no input image to judge against (input.png, or the ground truth's composite)");
                var judgement = await judge.JudgeAsync(new JudgeGroup(sample.Id, input, [stack]), ct).ConfigureAwait(false);
                var c = judgement.Candidates[0];
                if (c.Failed || c.Reward is null)
                {
                    failures.Add(new EvalFailure(sample.Id, c.Error ?? "the judge returned no score"));
                    return;
                }

                judged[i] = sample with
                {
                    JudgeReward = c.Reward,
                    JudgeBackgroundInpainting = (c.Calibrated ?? c.Phase1)?.BackgroundInpainting,
                };
            }
            catch (BadInputException e)
            {
                failures.Add(new EvalFailure(sample.Id, e.Message));
            }
        }).ConfigureAwait(false);

        return (EvalReport.Build(judged, report.Failures), failures.OrderBy(f => f.Id, StringComparer.Ordinal).ToList());
    }

    /// <summary>The ground truth's composite when there is ground truth (what eval compares against), else the prediction's input.png.</summary>
    private static RgbaImage? InputOf(string predPath, string? gtPath)
    {
        if (gtPath is not null)
        {
            return (Directory.Exists(gtPath) ? LayeredFolder.ReadComposite(gtPath) : null)
                ?? LayeredFile.Read(gtPath, addWhiteBackground: true).FlattenOnWhite();
        }

        return Directory.Exists(predPath) ? LayeredFolder.ReadInput(predPath) : null;
    }
}
