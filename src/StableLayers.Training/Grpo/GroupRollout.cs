using StableLayers.Core.Layers;
using StableLayers.Model.Pipeline;
using StableLayers.Model.Schedulers;
using static TorchSharp.torch;

namespace StableLayers.Training.Grpo;

/// <summary>
/// G candidates sampled for one image with one layer count N: the stored SDE-window transitions the update
/// trains on, and the decoded layer stacks the judge scores. All candidates share the window (one batch).
/// </summary>
public sealed class GroupRollout : IDisposable
{
    /// <summary>Built by <see cref="GrpoStep.SampleGroup"/>; takes ownership of the conditioning and the sampling result.</summary>
    public GroupRollout(TrainingImage image, LayeredConditioning conditioning, SdeWindow window, SdeSamplingResult sampling, IReadOnlyList<LayerStack> candidates)
    {
        Image = image;
        Conditioning = conditioning;
        Window = window;
        Sampling = sampling;
        Candidates = candidates;
    }

    public TrainingImage Image { get; }

    public LayeredConditioning Conditioning { get; }

    public int Layers => Conditioning.Layers;

    public SdeWindow Window { get; }

    public SdeSamplingResult Sampling { get; }

    public IReadOnlyList<SdeTransition> Transitions => Sampling.Transitions;

    public IReadOnlyList<LayerStack> Candidates { get; }

    public void Dispose()
    {
        Sampling.Dispose();
        Conditioning.Dispose();
    }
}

/// <summary>How the training sampler runs (from <see cref="GrpoConfig.SamplingSection"/>).</summary>
public sealed record RolloutSettings(int GroupSize, int Steps, double NoiseLevel, SdeKind Kind, string Prompt)
{
    /// <summary>The config value that stands for each image's own caption (a detailed prompt; empty where there is none).</summary>
    public const string CaptionPrompt = "{caption}";

    public static RolloutSettings Of(GrpoConfig.SamplingSection sampling)
    {
        ArgumentNullException.ThrowIfNull(sampling);
        return new(sampling.GroupSize, sampling.Steps, sampling.NoiseLevel, sampling.SdeKind, sampling.Prompt);
    }

    public string PromptFor(string? caption) => Prompt == CaptionPrompt ? caption ?? string.Empty : Prompt;
}
