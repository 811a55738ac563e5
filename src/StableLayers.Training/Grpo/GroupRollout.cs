using StableLayers.Core.Layers;
using StableLayers.Model;
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
    private GroupRollout(TrainingImage image, LayeredConditioning conditioning, SdeWindow window, SdeSamplingResult sampling, IReadOnlyList<LayerStack> candidates)
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

    public static GroupRollout Run(LayeredModel model, TrainingImage image, int layers, RolloutSettings settings, SdeWindow window, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(settings);
        var conditioning = LayeredConditioning.Create(model, image.Image, layers, [settings.PromptFor(image.Caption)], copies: settings.GroupSize);
        try
        {
            using var scope = NewDisposeScope();
            var noise = conditioning.InitialNoise(generator, settings.GroupSize);
            var sampling = SdeSampling.Sample(noise, conditioning.Schedule(settings.Steps), conditioning.Velocity, window, settings.NoiseLevel, generator, settings.Kind);
            var candidates = conditioning.Decode(sampling.Final);
            sampling.Final.MoveToOuterDisposeScope();
            foreach (var t in sampling.Transitions)
            {
                foreach (var tensor in new[] { t.X, t.XNext, t.MeanOld, t.Eps, t.LogProbOld })
                {
                    tensor.MoveToOuterDisposeScope();
                }
            }

            return new GroupRollout(image, conditioning, window, sampling, candidates);
        }
        catch
        {
            conditioning.Dispose();
            throw;
        }
    }

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

    public string PromptFor(string? caption) => Prompt == CaptionPrompt ? caption ?? string.Empty : Prompt;
}
