using System.Globalization;
using StableLayers.Data.Synthesis;
using StableLayers.Judges;
using StableLayers.Metrics;
using StableLayers.Model;
using StableLayers.Model.Inference;

namespace StableLayers.Training.Grpo;

/// <summary>
/// The current policy on held-out synthetic designs with ground truth: deterministic Euler sampling at the
/// ground-truth layer count, the eval metrics (best-match L1, bad layers, reconstruction, evenness, layer 0),
/// and the judge's reward. Same samples and seeds at every evaluation, so steps compare directly.
/// </summary>
public sealed class HeldoutEvaluation(LayeredModel model, IReadOnlyList<SynthSample> samples, int steps, RolloutSettings? prompts = null)
{
    /// <summary>Rows of held-out inputs and their decompositions shown in grids and the report.</summary>
    public const int GridRows = 6;

    public static string GridPath(string runDir, int step) => Path.Combine(runDir, "eval", string.Create(CultureInfo.InvariantCulture, $"step_{step:D5}.png"));

    /// <summary>The first <see cref="GridRows"/> held-out inputs with their predicted layers.</summary>
    public Core.Imaging.RgbaImage Grid(IReadOnlyList<Core.Layers.LayerStack> predictions) =>
        Core.Layers.LayerGrid.Render(samples.Zip(predictions).Take(GridRows).Select(p => ((Core.Imaging.RgbaImage?)p.First.Stack.FlattenOnWhite(), p.Second)).ToList());

    public static IReadOnlyList<SynthSample> Samples(int resolution, int seed, int count, int minLayers, int maxLayers) =>
        new SynthGenerator(new SynthOptions { Size = resolution, Seed = seed, MinLayers = minLayers, MaxLayers = maxLayers }).Generate(0, count).ToList();

    public async Task<(EvalLog Log, IReadOnlyList<Core.Layers.LayerStack> Predictions)> RunAsync(int step, IJudge? judge, CancellationToken cancel)
    {
        var decomposer = new LayeredDecomposer(model);
        var metrics = new List<SampleMetrics>();
        var predictions = new List<Core.Layers.LayerStack>();
        var rewards = new List<double>();
        for (int i = 0; i < samples.Count; i++)
        {
            cancel.ThrowIfCancellationRequested();
            var sample = samples[i];
            var input = sample.Stack.FlattenOnWhite();
            var pred = decomposer.Decompose(input, new DecomposeOptions { Layers = sample.Stack.Count, Steps = steps, Seed = i, Prompt = prompts?.PromptFor(sample.Caption) ?? string.Empty }, cancel);
            predictions.Add(pred);
            metrics.Add(DecompositionEvaluator.Evaluate(sample.Id, pred, sample.Stack, input));
            if (judge is not null)
            {
                var j = await judge.JudgeAsync(new JudgeGroup(sample.Id, input, [pred]), cancel).ConfigureAwait(false);
                if (j.Rewards[0] is { } r)
                {
                    rewards.Add(r);
                }
            }
        }

        double? Mean(Func<SampleMetrics, double?> f) => MeanOfDefined(metrics, f);

        var byLayers = metrics.GroupBy(m => m.LayersGt ?? m.LayersPred).OrderBy(g => g.Key).ToDictionary(
            g => g.Key.ToString(CultureInfo.InvariantCulture),
            g => MeanOfDefined(g, m => m.BestMatchL1));
        var log = new EvalLog
        {
            Step = step,
            Samples = metrics.Count,
            BestMatchL1 = Mean(m => m.BestMatchL1),
            BestMatchL1ByLayers = byLayers,
            BadLayers = metrics.Count == 0 ? 0 : metrics.Average(m => m.BadLayers),
            ReconL1 = Mean(m => m.ReconL1),
            Evenness = Mean(m => m.Evenness),
            Layer0Ssim = Mean(m => m.Layer0Ssim),
            Layer0InpaintL1 = Mean(m => m.Layer0InpaintL1),
            RewardMean = rewards.Count == 0 ? null : rewards.Average(),
        };
        return (log, predictions);
    }

    /// <summary>Mean of a metric over the samples where it is defined; null when it is defined for none.</summary>
    private static double? MeanOfDefined(IEnumerable<SampleMetrics> samples, Func<SampleMetrics, double?> metric)
    {
        var values = samples.Select(metric).OfType<double>().ToList();
        return values.Count == 0 ? null : values.Average();
    }
}
