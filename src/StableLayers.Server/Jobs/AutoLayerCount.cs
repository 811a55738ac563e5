using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges;
using StableLayers.Judges.LayerCount;
using StableLayers.Model.Inference;

namespace StableLayers.Server.Jobs;

/// <summary>
/// layers = "auto": the single call the job runner makes to choose the layer count of one image. It hands the choice
/// to <see cref="LayerCountSelector"/> (method judge: decompose at every N of the range and let the judge rank them as
/// one group; method count: decompose at the maximum, count the distinct layers, decompose again) and turns its
/// answer into the job's outcome, reporting sampling progress over all the decompositions it makes.
/// </summary>
public static class AutoLayerCount
{
    public static JobOutcome Decompose(
        LayeredDecomposer decomposer,
        IJudge judge,
        RgbaImage input,
        DecomposeOptions options,
        LayerCountSettings settings,
        Action<JobProgress> progress,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(decomposer);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(progress);

        // The judge method decomposes once per count; the count method once or twice (the second only when the count
        // found differs from the maximum), so its total is an upper bound.
        int decompositions = settings.Method == LayerCountMethod.Judge ? settings.Range.Count : 2;
        int total = decompositions * options.Steps;
        int before = 0;
        progress(new JobProgress("sampling", 0, total));
        LayerStack DecomposeAt(int layers, CancellationToken token)
        {
            int offset = before;
            var stack = decomposer.Decompose([input], [options with { Layers = layers }], (done, _) => progress(new JobProgress("sampling", offset + done, total)), token)[0];
            before += options.Steps;
            return stack;
        }

        var selection = new LayerCountSelector(judge)
            .SelectAsync(input, settings, DecomposeAt, new Reporter(p =>
            {
                if (p.Stage == LayerCountStage.Judging)
                {
                    progress(new JobProgress("judging", 0, 1));
                }
            }), cancellationToken)
            .GetAwaiter().GetResult();

        int chosen = selection.Candidates.ToList().FindLastIndex(c => c.Layers == selection.Layers);
        JobScores scores;
        if (selection.Candidates[chosen].Judgement is { } j)
        {
            scores = new JobScores(selection.Judgement!.Judge, j.Phase1, j.Calibrated, j.Failed ? null : j.Reward, j.Failed ? j.Error ?? "no score" : null);
        }
        else
        {
            // The count method judges nothing on its way; the page still shows the chosen layers' scores.
            progress(new JobProgress("judging", 0, 1));
            scores = ModelEngine.Judge(judge, input, [selection.Stack], cancellationToken)[0];
        }

        var candidates = selection.Candidates.Select(c => new AutoCandidate(c.Layers, c.Reward, c.DistinctLayers, c.Judgement?.Error)).ToList();
        return new JobOutcome(selection.Stack, scores, new AutoChoice(
            selection.Method.ToString().ToLowerInvariant(), settings.Range.Min, settings.Range.Max, candidates, selection.Layers));
    }

    /// <summary>Reports on the selector's own thread (<see cref="Progress{T}"/> would post to the thread pool, out of order).</summary>
    private sealed class Reporter(Action<LayerCountProgress> report) : IProgress<LayerCountProgress>
    {
        public void Report(LayerCountProgress value) => report(value);
    }
}
