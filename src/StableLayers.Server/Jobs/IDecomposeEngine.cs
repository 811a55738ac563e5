using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges;

namespace StableLayers.Server.Jobs;

/// <summary>Where a running job is: its phase and, while sampling, the steps done out of all.</summary>
public sealed record JobProgress(string Phase, int Done, int Total);

/// <summary>The judge's view of one candidate: per-criterion scores of phase 1 (k/5) and, when calibrated, phase 2.</summary>
public sealed record JobScores(string Judge, CriterionScores? Phase1, CriterionScores? Calibrated, double? Reward, string? Error);

/// <summary>One decomposition made by "auto": its layer count, the judge's reward (method judge) or the distinct layers counted in it (method count).</summary>
public sealed record AutoCandidate(int Layers, double? Reward, int? DistinctLayers, string? Error);

/// <summary>How "auto" chose: the range tried, each candidate's reward, the chosen count and the method's name.</summary>
public sealed record AutoChoice(string Method, int MinLayers, int MaxLayers, IReadOnlyList<AutoCandidate> Candidates, int Chosen);

/// <summary>A finished decomposition: the layers (input size, bottom first), their scores, and how "auto" chose, if it did.</summary>
public sealed record JobOutcome(LayerStack Stack, JobScores Scores, AutoChoice? Auto);

/// <summary>
/// Runs one job: the image to layers, then the judge. Called on a runner thread; must honour
/// <paramref name="cancellationToken"/> (an <see cref="OperationCanceledException"/> ends the job as cancelled) and may
/// be called by several runners at once.
/// </summary>
public interface IDecomposeEngine
{
    /// <summary>The model's name, shown by the page and <c>/api/info</c>.</summary>
    string ModelName { get; }

    string JudgeName { get; }

    JobOutcome Run(RgbaImage input, JobSettings settings, Action<JobProgress> progress, CancellationToken cancellationToken);
}
