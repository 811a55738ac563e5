using StableLayers.Core.Imaging;
using StableLayers.Judges;
using StableLayers.Model.Inference;

namespace StableLayers.Server.Jobs;

/// <summary>
/// layers = "auto": the single call the job runner makes to choose the layer count of one image.
/// INTERIM (issue 14 item 3 builds the real selector on its own branch; this call is where it is wired in): decompose
/// at every N in <see cref="MinLayers"/>..<see cref="MaxLayers"/> with the job's seed, judge the candidates as one
/// group (so the judge's calibration compares across N) and keep the highest reward; ties go to fewer layers.
/// </summary>
public static class AutoLayerCount
{
    public const string Method = "judge-ranked over N (interim)";
    public const int MinLayers = 2;
    public const int MaxLayers = 8;

    public static JobOutcome Decompose(
        LayeredDecomposer decomposer,
        IJudge judge,
        RgbaImage input,
        DecomposeOptions options,
        Action<int, int> onStep,
        Action<JobProgress> progress,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(decomposer);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(progress);
        var counts = Enumerable.Range(MinLayers, MaxLayers - MinLayers + 1).ToList();
        progress(new JobProgress("sampling", 0, counts.Count * options.Steps));
        var stacks = decomposer.Decompose(
            counts.Select(_ => input).ToList(),
            counts.Select(n => options with { Layers = n }).ToList(),
            onStep,
            cancellationToken);
        progress(new JobProgress("judging", 0, 1));
        var scores = ModelEngine.Judge(judge, input, stacks, cancellationToken);
        int best = 0;
        for (int i = 1; i < counts.Count; i++)
        {
            if ((scores[i].Reward ?? double.NegativeInfinity) > (scores[best].Reward ?? double.NegativeInfinity))
            {
                best = i;
            }
        }

        var candidates = counts.Select((n, i) => new AutoCandidate(n, scores[i].Reward, scores[i].Error)).ToList();
        return new JobOutcome(stacks[best], scores[best], new AutoChoice(Method, MinLayers, MaxLayers, candidates, counts[best]));
    }
}
