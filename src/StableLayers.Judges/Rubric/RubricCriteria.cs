using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Metrics;

namespace StableLayers.Judges.Rubric;

/// <summary>
/// The rubric judge's five criteria for one candidate, from pixels only (the input image and the candidate's
/// layers, no ground truth): see each criterion's class for its formula. Deterministic and single-threaded.
/// </summary>
public static class RubricCriteria
{
    /// <summary>Measures one candidate. Throws <see cref="ArgumentException"/> when its size differs from the input's.</summary>
    public static RubricBreakdown Evaluate(RgbaImage input, LayerStack candidate)
    {
        ArgumentNullException.ThrowIfNull(input);
        return Evaluate(LayerPlanes.RgbPlane(input), input.Width, input.Height, candidate);
    }

    /// <summary>As <see cref="Evaluate(RgbaImage, LayerStack)"/> with the input already flattened on white (shared across a group).</summary>
    public static RubricBreakdown Evaluate(float[] inputOnWhite, int width, int height, LayerStack candidate)
    {
        ArgumentNullException.ThrowIfNull(inputOnWhite);
        ArgumentNullException.ThrowIfNull(candidate);
        if (candidate.Width != width || candidate.Height != height)
        {
            throw new ArgumentException($"the candidate is {candidate.Width}x{candidate.Height}, the input is {width}x{height}", nameof(candidate));
        }

        if (inputOnWhite.Length != width * height * 3)
        {
            throw new ArgumentException("the input plane does not match the given size", nameof(inputOnWhite));
        }

        var planes = candidate.Images.Select(LayerPlanes.From).ToArray();
        var quality = LayerQuality.Assess(planes, inputOnWhite);
        return new RubricBreakdown(
            SeparationCriterion.Measure(candidate, planes, quality),
            AlphaCriterion.Measure(planes, quality),
            BackgroundCriterion.Measure(planes, inputOnWhite),
            DistributionCriterion.Measure(planes, quality),
            ValidityCriterion.Measure(planes, inputOnWhite, quality));
    }
}
