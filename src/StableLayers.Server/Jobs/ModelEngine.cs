using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges;
using StableLayers.Model;
using StableLayers.Model.Inference;

namespace StableLayers.Server.Jobs;

/// <summary>The real engine: a loaded <see cref="LayeredModel"/> decomposes, then <see cref="IJudge"/> scores the layers.</summary>
public sealed class ModelEngine(LayeredModel model, IJudge judge, string modelName) : IDecomposeEngine
{
    private readonly LayeredDecomposer decomposer = new(model);

    public string ModelName { get; } = modelName;

    public string JudgeName => judge.Name;

    public JobOutcome Run(RgbaImage input, JobSettings settings, Action<JobProgress> progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(progress);
        var options = new DecomposeOptions { Steps = settings.Steps, Seed = settings.Seed };
        void OnStep(int done, int total) => progress(new JobProgress("sampling", done, total));

        if (settings.Layers is not int layers)
        {
            return AutoLayerCount.Decompose(decomposer, judge, input, options, settings.Auto, progress, cancellationToken);
        }

        progress(new JobProgress("sampling", 0, settings.Steps));
        var stack = decomposer.Decompose([input], [options with { Layers = layers }], OnStep, cancellationToken)[0];
        progress(new JobProgress("judging", 0, 1));
        var scores = Judge(judge, input, [stack], cancellationToken)[0];
        return new JobOutcome(stack, scores, null);
    }

    /// <summary>Judges candidates of one input as one group; a judge that throws gives every candidate that error, not a score.</summary>
    internal static IReadOnlyList<JobScores> Judge(IJudge judge, RgbaImage input, IReadOnlyList<LayerStack> candidates, CancellationToken cancellationToken)
    {
        GroupJudgement group;
        try
        {
            // The rubric finishes synchronously; a VLM judge does network I/O, so this runner thread waits for it.
            group = judge.JudgeAsync(new JudgeGroup("upload", input, candidates), cancellationToken).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return candidates.Select(_ => new JobScores(judge.Name, null, null, null, $"judge failed: {e.Message}")).ToList();
        }

        return group.Candidates
            .OrderBy(c => c.Index)
            .Select(c => new JobScores(group.Judge, c.Phase1, c.Calibrated, c.Failed ? null : c.Reward, c.Failed ? c.Error ?? "no score" : null))
            .ToList();
    }
}
