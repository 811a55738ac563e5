using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;

namespace StableLayers.Metrics.LayerD;

/// <summary>One sample's LayerD protocol result (docs/EVALUATION.md, metric 2).</summary>
public sealed class LayerDResult
{
    /// <summary>DTW-aligned mean RGB L1 at edit levels 0..maxEdits; after the last edit taken the value is carried forward.</summary>
    public required double[] RgbL1 { get; init; }

    /// <summary>DTW-aligned mean alpha soft IoU at edit levels 0..maxEdits (carried forward).</summary>
    public required double[] AlphaIoU { get; init; }

    /// <summary>DTW-aligned mean matching cost (RGB L1 + 1 - IoU) / 2 at edit levels 0..maxEdits (carried forward); LayerD's "cost".</summary>
    public required double[] Cost { get; init; }

    /// <summary>Merges actually taken (0..maxEdits): LayerD stops early when no merge on either side has a positive gain.</summary>
    public required int EditsTaken { get; init; }

    /// <summary>The prediction's layer groups (indices, back to front) that were flattened before matching.</summary>
    public required IReadOnlyList<int[]> PredGroups { get; init; }

    /// <summary>The ground truth's layer groups.</summary>
    public required IReadOnlyList<int[]> GtGroups { get; init; }

    public int MaxEdits => RgbL1.Length - 1;
}

/// <summary>One row of LayerD's <c>LayersEditDist.aggregate</c>.</summary>
/// <param name="MaxEdits">The edit level.</param>
/// <param name="AvgEdits">Mean over samples of min(edits taken, level).</param>
/// <param name="Count">Samples that actually reached this level (the others contribute their last value).</param>
public sealed record LayerDAggregateLevel(int MaxEdits, double AvgEdits, int Count, double AvgCost, double AvgRgbL1, double AvgAlphaIoU);

/// <summary>
/// An exact port of the LayerD evaluation (Suzuki et al., ICCV 2025; cyberagentailab/LayerD
/// <c>layerd.evaluation.LayersEditDist</c> with its defaults: cost RGBL1_AIoU, scores rgb_l1 and alpha_iou,
/// Merge edits on both sides, max 5 edits), plus the &lt;2-layer skip of LayerD's <c>tools/evaluate.py</c>.
/// </summary>
public static class LayerDProtocol
{
    public const int DefaultMaxEdits = 5;

    /// <summary>
    /// Evaluates one sample. Both stacks are bottom first, 8-bit straight-alpha RGBA, all the same size.
    /// Returns null when either side has fewer than 2 layers (LayerD's evaluate script skips those samples).
    /// </summary>
    public static LayerDResult? Evaluate(IReadOnlyList<RgbaImage> pred, IReadOnlyList<RgbaImage> gt, int maxEdits = DefaultMaxEdits)
    {
        ArgumentNullException.ThrowIfNull(pred);
        ArgumentNullException.ThrowIfNull(gt);
        ArgumentOutOfRangeException.ThrowIfNegative(maxEdits);
        if (pred.Count < 2 || gt.Count < 2)
        {
            return null;
        }

        var reference = gt[0];
        foreach (var (layers, name) in new[] { (pred, "pred"), (gt, "gt") })
        {
            for (int i = 0; i < layers.Count; i++)
            {
                if (!layers[i].SameSize(reference))
                {
                    throw new ArgumentException($"{name} layer {i} is {layers[i].Width}x{layers[i].Height}, gt layer 0 is {reference.Width}x{reference.Height}", name);
                }
            }
        }

        return new Session(reference.Width, reference.Height).Run(pred, gt, maxEdits);
    }

    /// <summary>Evaluates two layer stacks (bottom first), e.g. read with <c>LayeredFolder.Read</c>.</summary>
    public static LayerDResult? Evaluate(LayerStack pred, LayerStack gt, int maxEdits = DefaultMaxEdits)
    {
        ArgumentNullException.ThrowIfNull(pred);
        ArgumentNullException.ThrowIfNull(gt);
        return Evaluate(pred.Images.ToList(), gt.Images.ToList(), maxEdits);
    }

    /// <summary>LayerD's <c>LayersEditDist.aggregate</c>: per edit level (up to the most edits any sample took), the mean over
    /// all samples, where a sample with fewer edits contributes its last value.</summary>
    public static IReadOnlyList<LayerDAggregateLevel> Aggregate(IReadOnlyList<LayerDResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var rows = new List<LayerDAggregateLevel>();
        if (results.Count == 0)
        {
            return rows;
        }

        int levels = results.Max(r => r.EditsTaken) + 1;
        var edits = new double[results.Count];
        var cost = new double[results.Count];
        var l1 = new double[results.Count];
        var iou = new double[results.Count];
        for (int level = 0; level < levels; level++)
        {
            // LayerD lists the samples that reached this level first, then the others with their last value.
            int k = 0, count = 0;
            foreach (bool reached in new[] { true, false })
            {
                foreach (var r in results)
                {
                    if ((level <= r.EditsTaken) != reached)
                    {
                        continue;
                    }

                    int at = Math.Min(level, r.EditsTaken);
                    edits[k] = at;
                    cost[k] = r.Cost[at];
                    l1[k] = r.RgbL1[at];
                    iou[k] = r.AlphaIoU[at];
                    k++;
                    count += reached ? 1 : 0;
                }
            }

            rows.Add(new LayerDAggregateLevel(level, NumpySum.Mean(edits), count, NumpySum.Mean(cost), NumpySum.Mean(l1), NumpySum.Mean(iou)));
        }

        return rows;
    }

    /// <summary>One evaluation: layer ids, and caches of pair scores and merges (images never change once made).</summary>
    private sealed class Session(int width, int height)
    {
        private readonly Dictionary<long, LayerDPairScore> _scores = [];
        private readonly Dictionary<long, LayerDImage> _merges = [];
        private int _nextId;

        public LayerDResult Run(IReadOnlyList<RgbaImage> pred, IReadOnlyList<RgbaImage> gt, int maxEdits)
        {
            var predImages = pred.Select(l => LayerDImage.From(_nextId++, l)).ToList();
            var gtImages = gt.Select(l => LayerDImage.From(_nextId++, l)).ToList();
            var predGroups = LayerDGrouping.Group(predImages);
            var gtGroups = LayerDGrouping.Group(gtImages);
            var layers1 = predGroups.Select(g => Flatten(predImages, g)).ToList();
            var layers2 = gtGroups.Select(g => Flatten(gtImages, g)).ToList();

            var raw = new List<LayerDPairScore>(maxEdits + 1);
            var path = Align(layers1, layers2, out var scores);
            raw.Add(scores);
            int edits = 0;
            while (edits < maxEdits)
            {
                var best1 = BestMerge(layers1, layers2, path, swapped: false);
                var best2 = BestMerge(layers2, layers1, path, swapped: true);
                if (best1.Index < 0 && best2.Index < 0)
                {
                    break;
                }

                if (best1.Gain > best2.Gain)
                {
                    Apply(layers1, best1);
                }
                else
                {
                    Apply(layers2, best2);
                }

                edits++;
                path = Align(layers1, layers2, out scores);
                raw.Add(scores);
            }

            var result = new LayerDResult
            {
                RgbL1 = new double[maxEdits + 1],
                AlphaIoU = new double[maxEdits + 1],
                Cost = new double[maxEdits + 1],
                EditsTaken = edits,
                PredGroups = predGroups,
                GtGroups = gtGroups,
            };
            for (int level = 0; level <= maxEdits; level++)
            {
                var s = raw[Math.Min(level, raw.Count - 1)];
                result.RgbL1[level] = s.RgbL1;
                result.AlphaIoU[level] = s.AlphaIoU;
                result.Cost[level] = s.Cost;
            }

            return result;
        }

        private static void Apply(List<LayerDImage> layers, MergeChoice choice)
        {
            layers.RemoveAt(choice.Index + 1);
            layers[choice.Index] = choice.Merged!;
        }

        private LayerDImage Flatten(List<LayerDImage> layers, int[] group)
        {
            var acc = layers[group[0]];
            for (int k = 1; k < group.Length; k++)
            {
                acc = Merge(acc, layers[group[k]]);
            }

            return acc;
        }

        /// <summary>DynamicTimeWarping.__call__: path, and the means over it of cost, rgb_l1 and alpha_iou.</summary>
        private List<(int I, int J)> Align(List<LayerDImage> layers1, List<LayerDImage> layers2, out LayerDPairScore means)
        {
            var cost = new double[layers1.Count, layers2.Count];
            for (int i = 0; i < layers1.Count; i++)
            {
                for (int j = 0; j < layers2.Count; j++)
                {
                    cost[i, j] = Score(layers1[i], layers2[j]).Cost;
                }
            }

            var path = LayerDDtw.Path(cost);
            var c = new double[path.Count];
            var l1 = new double[path.Count];
            var iou = new double[path.Count];
            for (int k = 0; k < path.Count; k++)
            {
                var s = Score(layers1[path[k].I], layers2[path[k].J]);
                c[k] = s.Cost;
                l1[k] = s.RgbL1;
                iou[k] = s.AlphaIoU;
            }

            means = new LayerDPairScore(NumpySum.Mean(l1), NumpySum.Mean(iou), NumpySum.Mean(c));
            return path;
        }

        /// <summary>
        /// Merge._compute_merged_scores + _find_best_match for one side: for each adjacent pair (i, i+1) of ls (only when
        /// ls has more than 2 layers), with G0/G1 the other-side layers matched to i / i+1 on the path (path order):
        /// cur = S(ls[i], G0) + S(ls[i+1], G1); candidates c = [S(m, G0), S(m, G1), S(ls[i+2], G0), S(ls[i+2], G1)]
        /// (m = ls[i+1] over ls[i]; the last two only when i+2 exists); best = max(c[k] + c[0], k &gt;= 1);
        /// gain = best - cur when best &gt; cur. S sums similarities 1 - cost(x, g) with x first. The first largest gain wins.
        /// </summary>
        private MergeChoice BestMerge(List<LayerDImage> ls, List<LayerDImage> gts, List<(int I, int J)> path, bool swapped)
        {
            var best = new MergeChoice(-1, double.NegativeInfinity, null);
            if (ls.Count <= 2)
            {
                return best;
            }

            var g0 = new List<LayerDImage>();
            var g1 = new List<LayerDImage>();
            Span<double> candidates = stackalloc double[4];
            for (int i = 0; i < ls.Count - 1; i++)
            {
                var merged = Merge(ls[i], ls[i + 1]);
                g0.Clear();
                g1.Clear();
                foreach (var (pi, pj) in path)
                {
                    int own = swapped ? pj : pi, other = swapped ? pi : pj;
                    if (own == i)
                    {
                        g0.Add(gts[other]);
                    }
                    else if (own == i + 1)
                    {
                        g1.Add(gts[other]);
                    }
                }

                double cur = SimSum(ls[i], g0) + SimSum(ls[i + 1], g1);
                int nc = 0;
                candidates[nc++] = SimSum(merged, g0);
                candidates[nc++] = SimSum(merged, g1);
                if (i + 2 < ls.Count)
                {
                    candidates[nc++] = SimSum(ls[i + 2], g0);
                    candidates[nc++] = SimSum(ls[i + 2], g1);
                }

                double maxD = double.NegativeInfinity;
                for (int k = 1; k < nc; k++)
                {
                    double adjusted = candidates[k] + candidates[0];
                    if (k == 1 || adjusted > maxD)
                    {
                        maxD = adjusted;
                    }
                }

                if (maxD > cur)
                {
                    double gain = maxD - cur;
                    if (best.Index < 0 || gain > best.Gain)
                    {
                        best = new MergeChoice(i, gain, merged);
                    }
                }
            }

            return best;
        }

        /// <summary>Python's sum(1 - cost(x, g) for g in group), left to right from 0.</summary>
        private double SimSum(LayerDImage x, List<LayerDImage> group)
        {
            double s = 0;
            foreach (var g in group)
            {
                s += 1 - Score(x, g).Cost;
            }

            return s;
        }

        private LayerDPairScore Score(LayerDImage p, LayerDImage g)
        {
            long key = ((long)p.Id << 32) | (uint)g.Id;
            if (!_scores.TryGetValue(key, out var s))
            {
                s = LayerDMetrics.Score(p, g);
                _scores[key] = s;
            }

            return s;
        }

        /// <summary>Image.alpha_composite(dst, src): src over dst.</summary>
        private LayerDImage Merge(LayerDImage dst, LayerDImage src)
        {
            long key = ((long)dst.Id << 32) | (uint)src.Id;
            if (_merges.TryGetValue(key, out var merged))
            {
                return merged;
            }

            var output = (byte[])dst.Pixels.Clone();
            if (!src.IsEmpty)
            {
                PilAlphaComposite.CompositeRegion(dst.Pixels, src.Pixels, output, width, src.X0, src.Y0, src.X1, src.Y1);
            }

            // alpha_composite's output alpha is > 0 exactly where either input's is.
            int x0, y0, x1, y1;
            if (dst.IsEmpty)
            {
                (x0, y0, x1, y1) = (src.X0, src.Y0, src.X1, src.Y1);
            }
            else if (src.IsEmpty)
            {
                (x0, y0, x1, y1) = (dst.X0, dst.Y0, dst.X1, dst.Y1);
            }
            else
            {
                (x0, y0, x1, y1) = (Math.Min(dst.X0, src.X0), Math.Min(dst.Y0, src.Y0), Math.Max(dst.X1, src.X1), Math.Max(dst.Y1, src.Y1));
            }

            merged = new LayerDImage(_nextId++, width, height, output, x0, y0, x1, y1);
            _merges[key] = merged;
            return merged;
        }
    }

    private readonly record struct MergeChoice(int Index, double Gain, LayerDImage? Merged);
}
