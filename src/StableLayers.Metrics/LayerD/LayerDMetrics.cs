using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using StableLayers.Core.Imaging;

namespace StableLayers.Metrics.LayerD;

/// <summary>LayerD's per-pair values for one (pred, gt) layer pair.</summary>
/// <param name="RgbL1">LayerD <c>RGBL1</c>: mean over pixels with gt alpha &gt; 0 of the channel-mean |rgb_p - rgb_g| (bytes/255),
/// divided by (count + 1e-8); the predicted alpha is ignored, and so 0 when gt is fully transparent.</param>
/// <param name="AlphaIoU">LayerD <c>AlphaIoU</c>: sum min(a_p, a_g) / sum max(a_p, a_g), 0 when both are empty.</param>
/// <param name="Cost">LayerD <c>RGBL1_AIoU</c>: (RgbL1 + (1 - AlphaIoU)) / 2, the DTW cost (similarity = 1 - cost).</param>
public readonly record struct LayerDPairScore(double RgbL1, double AlphaIoU, double Cost);

/// <summary>
/// LayerD's layer-pair metrics (<c>layerd.evaluation.metrics</c>: RGBL1, AlphaIoU, RGBL1_AIoU with their defaults:
/// normalize 255, weight_by_alpha, eps 1e-8, alpha weight 1). Sums are accumulated exactly in integers and
/// divided once, which equals LayerD's float64 numpy result up to rounding (~1e-15).
/// </summary>
public static class LayerDMetrics
{
    private const double Eps = 1e-8;

    public static double RgbL1(RgbaImage pred, RgbaImage gt) => Score(pred, gt).RgbL1;

    public static double AlphaIoU(RgbaImage pred, RgbaImage gt) => Score(pred, gt).AlphaIoU;

    public static double Cost(RgbaImage pred, RgbaImage gt) => Score(pred, gt).Cost;

    public static LayerDPairScore Score(RgbaImage pred, RgbaImage gt)
    {
        ArgumentNullException.ThrowIfNull(pred);
        ArgumentNullException.ThrowIfNull(gt);
        if (!pred.SameSize(gt))
        {
            throw new ArgumentException($"images differ in size: {pred.Width}x{pred.Height} vs {gt.Width}x{gt.Height}", nameof(gt));
        }

        return Score(LayerDImage.From(0, pred), LayerDImage.From(1, gt));
    }

    internal static LayerDPairScore Score(LayerDImage p, LayerDImage g)
    {
        // Outside the union of both alpha>0 boxes both alphas are 0: nothing adds to min/max sums or to the gt mask.
        int x0, y0, x1, y1;
        if (p.IsEmpty && g.IsEmpty)
        {
            x0 = y0 = x1 = y1 = 0;
        }
        else if (p.IsEmpty)
        {
            (x0, y0, x1, y1) = (g.X0, g.Y0, g.X1, g.Y1);
        }
        else if (g.IsEmpty)
        {
            (x0, y0, x1, y1) = (p.X0, p.Y0, p.X1, p.Y1);
        }
        else
        {
            (x0, y0, x1, y1) = (Math.Min(p.X0, g.X0), Math.Min(p.Y0, g.Y0), Math.Max(p.X1, g.X1), Math.Max(p.Y1, g.Y1));
        }

        var sums = new PixelSums();
        ref byte pp = ref MemoryMarshal.GetArrayDataReference(p.Pixels);
        ref byte gp = ref MemoryMarshal.GetArrayDataReference(g.Pixels);
        int width = p.Width;
        for (int y = y0; y < y1; y++)
        {
            nint i = ((nint)y * width + x0) * 4;
            nint end = ((nint)y * width + x1) * 4;
            if (Avx2.IsSupported)
            {
                i = RowAvx2(ref pp, ref gp, i, end, ref sums);
            }
            else if (Sse2.IsSupported)
            {
                i = RowSse2(ref pp, ref gp, i, end, ref sums);
            }

            RowScalar(ref pp, ref gp, i, end, ref sums);
        }

        long inter = sums.Inter, union = sums.Union, count = sums.Count, l1 = sums.L1;
        return FromSums(inter, union, count, l1);
    }

    /// <summary>Integer sums over a region: sum min(a_p, a_g), sum max(a_p, a_g), #(a_g &gt; 0), sum over a_g &gt; 0 of |drgb|.</summary>
    private struct PixelSums
    {
        public long Inter;
        public long Union;
        public long Count;
        public long L1;
    }

    private static void RowScalar(ref byte pp, ref byte gp, nint i, nint end, ref PixelSums sums)
    {
        int inter = 0, union = 0, count = 0, l1 = 0;
        for (; i < end; i += 4)
        {
            int pa = Unsafe.Add(ref pp, i + 3);
            int ga = Unsafe.Add(ref gp, i + 3);
            inter += Math.Min(pa, ga);
            union += Math.Max(pa, ga);
            if (ga != 0)
            {
                count++;
                l1 += Math.Abs(Unsafe.Add(ref pp, i) - Unsafe.Add(ref gp, i))
                    + Math.Abs(Unsafe.Add(ref pp, i + 1) - Unsafe.Add(ref gp, i + 1))
                    + Math.Abs(Unsafe.Add(ref pp, i + 2) - Unsafe.Add(ref gp, i + 2));
            }
        }

        sums.Inter += inter;
        sums.Union += union;
        sums.Count += count;
        sums.L1 += l1;
    }

    // SIMD rows: psadbw sums bytes exactly; alpha bytes are isolated with a mask, the gt mask (a_g != 0) selects the
    // RGB bytes of the pixels that count, and a 1 per counted pixel gives the count. Returns where the scalar tail starts.
    private static nint RowAvx2(ref byte pp, ref byte gp, nint i, nint end, ref PixelSums sums)
    {
        var alphaMask = Vector256.Create(0xFF000000u).AsByte();
        var rgbMask = Vector256.Create(0x00FFFFFFu).AsByte();
        var one = Vector256.Create(1u).AsByte();
        var zero = Vector256<byte>.Zero;
        Vector256<ulong> accI = default, accU = default, accL = default, accC = default;
        for (; i + 32 <= end; i += 32)
        {
            var vp = Vector256.LoadUnsafe(ref pp, (nuint)i);
            var vg = Vector256.LoadUnsafe(ref gp, (nuint)i);
            var pa = vp & alphaMask;
            var ga = vg & alphaMask;
            accI += Avx2.SumAbsoluteDifferences(Vector256.Min(pa, ga), zero).AsUInt64();
            accU += Avx2.SumAbsoluteDifferences(Vector256.Max(pa, ga), zero).AsUInt64();
            var counted = ~Vector256.Equals(ga.AsUInt32(), Vector256<uint>.Zero).AsByte();
            var m = counted & rgbMask;
            accL += Avx2.SumAbsoluteDifferences(vp & m, vg & m).AsUInt64();
            accC += Avx2.SumAbsoluteDifferences(counted & one, zero).AsUInt64();
        }

        sums.Inter += (long)Vector256.Sum(accI);
        sums.Union += (long)Vector256.Sum(accU);
        sums.L1 += (long)Vector256.Sum(accL);
        sums.Count += (long)Vector256.Sum(accC);
        return i;
    }

    private static nint RowSse2(ref byte pp, ref byte gp, nint i, nint end, ref PixelSums sums)
    {
        var alphaMask = Vector128.Create(0xFF000000u).AsByte();
        var rgbMask = Vector128.Create(0x00FFFFFFu).AsByte();
        var one = Vector128.Create(1u).AsByte();
        var zero = Vector128<byte>.Zero;
        Vector128<ulong> accI = default, accU = default, accL = default, accC = default;
        for (; i + 16 <= end; i += 16)
        {
            var vp = Vector128.LoadUnsafe(ref pp, (nuint)i);
            var vg = Vector128.LoadUnsafe(ref gp, (nuint)i);
            var pa = vp & alphaMask;
            var ga = vg & alphaMask;
            accI += Sse2.SumAbsoluteDifferences(Vector128.Min(pa, ga), zero).AsUInt64();
            accU += Sse2.SumAbsoluteDifferences(Vector128.Max(pa, ga), zero).AsUInt64();
            var counted = ~Vector128.Equals(ga.AsUInt32(), Vector128<uint>.Zero).AsByte();
            var m = counted & rgbMask;
            accL += Sse2.SumAbsoluteDifferences(vp & m, vg & m).AsUInt64();
            accC += Sse2.SumAbsoluteDifferences(counted & one, zero).AsUInt64();
        }

        sums.Inter += (long)Vector128.Sum(accI);
        sums.Union += (long)Vector128.Sum(accU);
        sums.L1 += (long)Vector128.Sum(accL);
        sums.Count += (long)Vector128.Sum(accC);
        return i;
    }

    internal static LayerDPairScore FromSums(long inter, long union, long count, long l1)
    {
        // numpy: (mean_c |p/255 - g/255| * mask).sum() / (mask.sum() + 1e-8)
        double rgbL1 = (l1 / 765.0) / (count + Eps);

        // numpy: min(a_p/255, a_g/255).sum() / max(...).sum() if union > 0 else 0.0
        double iou = union > 0 ? (double)inter / union : 0.0;

        // (1 * rgb_l1 + 1 * (1 - alpha_iou)) / (1 + 1)
        double cost = (rgbL1 + (1 - iou)) / 2;
        return new LayerDPairScore(rgbL1, iou, cost);
    }
}
