using StableLayers.Core;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Metrics.LayerD;

namespace StableLayers.Metrics;

/// <summary>Computes every metric of docs/EVALUATION.md for one predicted decomposition.</summary>
public static class DecompositionEvaluator
{
    /// <param name="id">Sample id (sub-folder name).</param>
    /// <param name="pred">Predicted layers, bottom first.</param>
    /// <param name="gt">Ground-truth layers, or null for the ground-truth-free metrics only.</param>
    /// <param name="input">The decomposed image: the ground-truth composite when <paramref name="gt"/> is given, else the prediction's input.png; null disables the metrics that need it.</param>
    public static SampleMetrics Evaluate(string id, LayerStack pred, LayerStack? gt, RgbaImage? input)
    {
        ArgumentNullException.ThrowIfNull(pred);
        if (gt is not null && (gt.Width != pred.Width || gt.Height != pred.Height))
        {
            throw new BadInputException(id, $"prediction is {pred.Width}x{pred.Height} but ground truth is {gt.Width}x{gt.Height}");
        }

        if (input is not null && (input.Width != pred.Width || input.Height != pred.Height))
        {
            throw new BadInputException(id, $"prediction is {pred.Width}x{pred.Height} but the input image is {input.Width}x{input.Height}");
        }

        var p = pred.Images.Select(LayerPlanes.From).ToArray();
        var inputPlane = input is null ? null : LayerPlanes.RgbPlane(input);
        var quality = LayerQuality.Assess(p, inputPlane);
        var metrics = new SampleMetrics
        {
            Id = id,
            LayersPred = pred.Count,
            Blank = quality.Blank,
            Glazed = quality.Glazed,
            Artifact = quality.Artifact,
            DegenerateBg = quality.DegenerateBackground ? 1 : 0,
            BadLayers = quality.BadLayers,
            Evenness = StackMetrics.Evenness(p),
            ReconL1 = inputPlane is null ? null : StackMetrics.ReconstructionL1(p, inputPlane),
        };

        if (gt is null)
        {
            return metrics;
        }

        var g = gt.Images.Select(LayerPlanes.From).ToArray();
        var best = StackMetrics.BestMatch(p, g);
        var layerd = LayerDProtocol.Evaluate(pred, gt);
        return metrics with
        {
            LayerdRgbL1 = layerd?.RgbL1,
            LayerdAlphaIou = layerd?.AlphaIoU,
            LayersGt = gt.Count,
            BestMatchL1 = best.Mean,
            BestMatchL1ByPredIndex = best.ByPredIndex,
            Layer0Ssim = StackMetrics.Layer0Ssim(p[0], g[0]),
            Layer0InpaintL1 = StackMetrics.Layer0InpaintL1(p[0], g),
        };
    }
}
