namespace StableLayers.Metrics;

/// <summary>Metrics of one decomposition against ground truth or the input (docs/EVALUATION.md 1, 5-8).</summary>
public static class StackMetrics
{
    /// <summary>cost(i,j) = mean over pixels and RGB of (|onwhite_i - onwhite_j| + |onblack_i - onblack_j|) / 2.</summary>
    public static double PairCost(LayerPlanes a, LayerPlanes b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        return (SumAbsDiff(a.OnWhite, b.OnWhite) + SumAbsDiff(a.OnBlack, b.OnBlack)) / (2.0 * a.OnWhite.Length);
    }

    /// <summary>Sum of |a - b|, vectorised; float partial sums over short blocks, accumulated in double.</summary>
    public static double SumAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length)
        {
            throw new ArgumentException("lengths differ");
        }

        int vec = System.Numerics.Vector<float>.Count;
        const int block = 1024; // keeps float partial sums short enough to stay exact to ~1e-7 relative
        double total = 0;
        int i = 0;
        while (i + vec <= a.Length)
        {
            var acc = System.Numerics.Vector<float>.Zero;
            int end = Math.Min(a.Length - vec, i + block);
            for (; i <= end; i += vec)
            {
                acc += System.Numerics.Vector.Abs(new System.Numerics.Vector<float>(a.Slice(i, vec)) - new System.Numerics.Vector<float>(b.Slice(i, vec)));
            }

            total += System.Numerics.Vector.Sum(acc);
        }

        for (; i < a.Length; i++)
        {
            total += Math.Abs(a[i] - b[i]);
        }

        return total;
    }

    /// <summary>Best-match per-layer RGB L1: Hungarian assignment on <see cref="PairCost"/>; mean over min(n,m) pairs and per predicted index.</summary>
    public static BestMatchResult BestMatch(IReadOnlyList<LayerPlanes> pred, IReadOnlyList<LayerPlanes> gt)
    {
        ArgumentNullException.ThrowIfNull(pred);
        ArgumentNullException.ThrowIfNull(gt);
        var cost = new double[pred.Count, gt.Count];
        for (int i = 0; i < pred.Count; i++)
        {
            for (int j = 0; j < gt.Count; j++)
            {
                cost[i, j] = PairCost(pred[i], gt[j]);
            }
        }

        var pairs = LinearAssignment.Solve(cost);
        var byPred = new double?[pred.Count];
        double total = 0;
        foreach (var (r, c) in pairs)
        {
            byPred[r] = cost[r, c];
            total += cost[r, c];
        }

        return new BestMatchResult(total / pairs.Length, byPred, pairs);
    }

    /// <summary>Pielou's evenness of each layer's visible contribution to the composite; null for one layer or nothing visible.</summary>
    public static double? Evenness(IReadOnlyList<LayerPlanes> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        int n = layers.Count;
        if (n < 2)
        {
            return null;
        }

        int pixels = layers[0].PixelCount;
        var v = new double[n];
        var transmit = new float[pixels];
        Array.Fill(transmit, 1f);
        for (int k = n - 1; k >= 0; k--)
        {
            var a = layers[k].Alpha;
            double s = 0;
            for (int i = 0; i < pixels; i++)
            {
                s += a[i] * (double)transmit[i];
                transmit[i] *= 1f - a[i];
            }

            v[k] = s;
        }

        double total = v.Sum();
        if (total <= 0)
        {
            return null;
        }

        double h = 0;
        foreach (double vk in v)
        {
            if (vk > 0)
            {
                double p = vk / total;
                h -= p * Math.Log(p);
            }
        }

        return h / Math.Log(n);
    }

    /// <summary>SSIM between the predicted background on white and the ground-truth background.</summary>
    public static double? Layer0Ssim(LayerPlanes pred0, LayerPlanes gt0)
    {
        ArgumentNullException.ThrowIfNull(pred0);
        ArgumentNullException.ThrowIfNull(gt0);
        return Ssim.Compute(pred0.OnWhite, gt0.OnWhite, pred0.Width, pred0.Height);
    }

    /// <summary>Mean |onwhite(pred_0) - onwhite(gt_0)| over the pixels the ground-truth foreground covers (alpha &gt; 0.1).</summary>
    public static double? Layer0InpaintL1(LayerPlanes pred0, IReadOnlyList<LayerPlanes> gt)
    {
        ArgumentNullException.ThrowIfNull(pred0);
        ArgumentNullException.ThrowIfNull(gt);
        int pixels = pred0.PixelCount;
        double sum = 0;
        long count = 0;
        for (int i = 0; i < pixels; i++)
        {
            bool covered = false;
            for (int k = 1; k < gt.Count && !covered; k++)
            {
                covered = gt[k].AlphaBytes[i] >= Thresholds.Covered;
            }

            if (!covered)
            {
                continue;
            }

            for (int c = 0; c < 3; c++)
            {
                sum += Math.Abs(pred0.OnWhite[(i * 3) + c] - gt[0].OnWhite[(i * 3) + c]);
            }

            count += 3;
        }

        return count == 0 ? null : sum / count;
    }

    /// <summary>The layers composited and flattened on white, unquantised, RGB interleaved.</summary>
    public static float[] FlattenOnWhite(IReadOnlyList<LayerPlanes> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        int pixels = layers[0].PixelCount;
        var acc = new float[pixels * 3]; // premultiplied colour
        var alpha = new float[pixels];
        foreach (var l in layers)
        {
            for (int i = 0; i < pixels; i++)
            {
                float a = l.Alpha[i];
                if (a == 0f)
                {
                    continue;
                }

                float keep = 1f - a;
                for (int c = 0; c < 3; c++)
                {
                    acc[(i * 3) + c] = l.OnBlack[(i * 3) + c] + (acc[(i * 3) + c] * keep);
                }

                alpha[i] = a + (alpha[i] * keep);
            }
        }

        for (int i = 0; i < pixels; i++)
        {
            float white = 1f - alpha[i];
            for (int c = 0; c < 3; c++)
            {
                acc[(i * 3) + c] += white;
            }
        }

        return acc;
    }

    /// <summary>Reconstruction error: mean |onwhite(composite(pred)) - input| over pixels and RGB.</summary>
    public static double ReconstructionL1(IReadOnlyList<LayerPlanes> pred, float[] inputOnWhite)
    {
        ArgumentNullException.ThrowIfNull(inputOnWhite);
        var flat = FlattenOnWhite(pred);
        if (flat.Length != inputOnWhite.Length)
        {
            throw new ArgumentException("input and layers differ in size", nameof(inputOnWhite));
        }

        return SumAbsDiff(flat, inputOnWhite) / flat.Length;
    }
}

/// <summary>The optimal pairing of predicted to ground-truth layers and its costs.</summary>
public sealed record BestMatchResult(double Mean, IReadOnlyList<double?> ByPredIndex, IReadOnlyList<(int Pred, int Gt)> Pairs);
