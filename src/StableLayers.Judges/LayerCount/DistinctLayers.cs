using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Metrics;

namespace StableLayers.Judges.LayerCount;

/// <summary>
/// The cheap layer-count predictor: how many layers of a decomposition hold something of their own. The background
/// always counts; a foreground layer counts unless it is blank, glazed or speckle (the bad-layer tests of
/// docs/EVALUATION.md) or covers mostly the same pixels as a foreground layer already counted (a model asked for
/// more layers than the image has tends to split one object over several layers or leave layers empty).
/// </summary>
public static class DistinctLayers
{
    /// <summary>Covered-mask intersection over union above which a layer counts as a near-copy of an earlier one.</summary>
    public const double DuplicateIou = 0.5;

    public static int Count(LayerStack stack, RgbaImage input) => Assess(stack, input).Count(kept => kept);

    /// <summary>Per layer (bottom first) whether it counts.</summary>
    public static IReadOnlyList<bool> Assess(LayerStack stack, RgbaImage input)
    {
        ArgumentNullException.ThrowIfNull(stack);
        ArgumentNullException.ThrowIfNull(input);
        var planes = stack.Images.Select(LayerPlanes.From).ToArray();
        var quality = LayerQuality.Assess(planes, LayerPlanes.RgbPlane(input));
        var kept = new bool[planes.Length];
        var keptMasks = new List<bool[]>();
        for (int k = 0; k < planes.Length; k++)
        {
            if (k == 0)
            {
                kept[k] = true;
                continue;
            }

            var d = quality.Layers[k];
            if (d.Blank || d.Glazed || d.Artifact)
            {
                continue;
            }

            var mask = Array.ConvertAll(planes[k].AlphaBytes, a => a >= Thresholds.Covered);
            if (keptMasks.Any(m => Iou(m, mask) > DuplicateIou))
            {
                continue;
            }

            keptMasks.Add(mask);
            kept[k] = true;
        }

        return kept;
    }

    private static double Iou(bool[] a, bool[] b)
    {
        int inter = 0, union = 0;
        for (int i = 0; i < a.Length; i++)
        {
            inter += a[i] && b[i] ? 1 : 0;
            union += a[i] || b[i] ? 1 : 0;
        }

        return union == 0 ? 0 : inter / (double)union;
    }
}
