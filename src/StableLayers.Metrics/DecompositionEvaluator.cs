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

        // The protocols are independent, so one sample's metrics run in parallel too (eval also
        // parallelises across samples; work stealing keeps both levels busy without oversubscription).
        LayerPlanes[] p = [], g = [];
        float[]? inputPlane = null;
        Parallel.Invoke(
            () => p = pred.Images.AsParallel().AsOrdered().Select(LayerPlanes.From).ToArray(),
            () => g = gt is null ? [] : gt.Images.AsParallel().AsOrdered().Select(LayerPlanes.From).ToArray(),
            () => inputPlane = input is null ? null : LayerPlanes.RgbPlane(input));

        LayerQualityReport quality = null!;
        double? evenness = null, recon = null, layer0Ssim = null, inpaint = null;
        BestMatchResult? best = null;
        LayerDResult? layerd = null;
        Parallel.Invoke(
            () => quality = LayerQuality.Assess(p, inputPlane),
            () =>
            {
                evenness = StackMetrics.Evenness(p);
                recon = inputPlane is null ? null : StackMetrics.ReconstructionL1(p, inputPlane);
            },
            () => best = gt is null ? null : StackMetrics.BestMatch(p, g),
            () => layerd = gt is null ? null : LayerDProtocol.Evaluate(pred, gt),
            () => layer0Ssim = gt is null ? null : StackMetrics.Layer0Ssim(p[0], g[0]),
            () => inpaint = gt is null ? null : StackMetrics.Layer0InpaintL1(p[0], g));

        return new SampleMetrics
        {
            Id = id,
            LayersPred = pred.Count,
            LayersGt = gt?.Count,
            Blank = quality.Blank,
            Glazed = quality.Glazed,
            Artifact = quality.Artifact,
            DegenerateBg = quality.DegenerateBackground ? 1 : 0,
            BadLayers = quality.BadLayers,
            Evenness = evenness,
            ReconL1 = recon,
            BestMatchL1 = best?.Mean,
            BestMatchL1ByPredIndex = best?.ByPredIndex,
            LayerdRgbL1 = layerd?.RgbL1,
            LayerdAlphaIou = layerd?.AlphaIoU,
            Layer0Ssim = layer0Ssim,
            Layer0InpaintL1 = inpaint,
        };
    }
}
