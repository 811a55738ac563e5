using System.Numerics;

namespace StableLayers.Metrics;

/// <summary>
/// Structural similarity with the settings of docs/EVALUATION.md, equal to scikit-image's
/// <c>structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
/// data_range=1, channel_axis=-1)</c>: an 11x11 Gaussian window, population covariance, K1 0.01,
/// K2 0.03, the mean taken over pixels at least 5 px from the border, averaged over channels.
/// Computed in float64, vectorised across x.
/// </summary>
public static class Ssim
{
    public const int Radius = 5;
    public const int WindowSize = (2 * Radius) + 1;
    private const double C1 = 0.01 * 0.01;
    private const double C2 = 0.03 * 0.03;
    private static readonly double[] Kernel = BuildKernel(1.5, Radius);

    /// <summary>SSIM of two pixel-interleaved images with <paramref name="channels"/> channels in [0,1]; null when smaller than the window.</summary>
    public static double? Compute(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int width, int height, int channels = 3)
    {
        if (a.Length != width * height * channels || b.Length != a.Length)
        {
            throw new ArgumentException("image sizes do not match the given dimensions");
        }

        if (width < WindowSize || height < WindowSize)
        {
            return null;
        }

        var buffers = new Buffers(width, height);
        double total = 0;
        for (int c = 0; c < channels; c++)
        {
            total += Channel(a, b, width, height, channels, c, buffers);
        }

        return total / channels;
    }

    /// <summary>Scratch arrays reused across channels (they are large; allocation dominated the run time).</summary>
    private sealed class Buffers
    {
        public Buffers(int w, int h)
        {
            int rows = h * (w - (2 * Radius));
            X = GC.AllocateUninitializedArray<double>(w * h);
            Y = GC.AllocateUninitializedArray<double>(w * h);
            H = Enumerable.Range(0, 5).Select(_ => GC.AllocateUninitializedArray<double>(rows)).ToArray();
        }

        public double[] X { get; }

        public double[] Y { get; }

        /// <summary>Horizontally filtered X, Y, XX, YY, XY.</summary>
        public double[][] H { get; }
    }

    private static double Channel(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int w, int h, int channels, int c, Buffers buf)
    {
        // Moments X, Y, XX, YY, XY filtered separably: one fused horizontal pass computes all five from X and Y,
        // one fused vertical pass finishes the filter and evaluates SSIM, so nothing large is written twice.
        // Only interior outputs are averaged and those never read past the border, so no padding is needed.
        int n = w * h;
        int iw = w - (2 * Radius);
        int ih = h - (2 * Radius);
        var xs = buf.X;
        var ys = buf.Y;
        for (int i = 0; i < n; i++)
        {
            xs[i] = a[(i * channels) + c];
            ys[i] = b[(i * channels) + c];
        }

        HorizontalPass(xs, ys, buf.H, w, h, iw);
        return VerticalPassAndSsim(buf.H, iw, ih) / ((double)iw * ih);
    }

    private static void HorizontalPass(double[] xs, double[] ys, double[][] hm, int w, int h, int iw)
    {
        int vec = Vector<double>.Count;
        for (int y = 0; y < h; y++)
        {
            var xr = xs.AsSpan(y * w, w);
            var yr = ys.AsSpan(y * w, w);
            int o = y * iw;
            int x = 0;
            for (; x <= iw - vec; x += vec)
            {
                Vector<double> sx = default, sy = default, sxx = default, syy = default, sxy = default;
                for (int k = 0; k < WindowSize; k++)
                {
                    var vx = new Vector<double>(xr.Slice(x + k, vec));
                    var vy = new Vector<double>(yr.Slice(x + k, vec));
                    var wk = new Vector<double>(Kernel[k]);
                    var wx = vx * wk;
                    var wy = vy * wk;
                    sx += wx;
                    sy += wy;
                    sxx += wx * vx;
                    syy += wy * vy;
                    sxy += wx * vy;
                }

                sx.CopyTo(hm[0], o + x);
                sy.CopyTo(hm[1], o + x);
                sxx.CopyTo(hm[2], o + x);
                syy.CopyTo(hm[3], o + x);
                sxy.CopyTo(hm[4], o + x);
            }

            for (; x < iw; x++)
            {
                double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
                for (int k = 0; k < WindowSize; k++)
                {
                    double vx = xr[x + k], vy = yr[x + k], wk = Kernel[k];
                    sx += wk * vx;
                    sy += wk * vy;
                    sxx += wk * vx * vx;
                    syy += wk * vy * vy;
                    sxy += wk * vx * vy;
                }

                hm[0][o + x] = sx;
                hm[1][o + x] = sy;
                hm[2][o + x] = sxx;
                hm[3][o + x] = syy;
                hm[4][o + x] = sxy;
            }
        }
    }

    private static double VerticalPassAndSsim(double[][] hm, int iw, int ih)
    {
        int vec = Vector<double>.Count;
        var c1 = new Vector<double>(C1);
        var c2 = new Vector<double>(C2);
        var two = new Vector<double>(2.0);
        var total = Vector<double>.Zero;
        double tail = 0;
        for (int y = 0; y < ih; y++)
        {
            int x = 0;
            for (; x <= iw - vec; x += vec)
            {
                Vector<double> ux = default, uy = default, uxx = default, uyy = default, uxy = default;
                for (int k = 0; k < WindowSize; k++)
                {
                    int o = ((y + k) * iw) + x;
                    var wk = new Vector<double>(Kernel[k]);
                    ux += new Vector<double>(hm[0], o) * wk;
                    uy += new Vector<double>(hm[1], o) * wk;
                    uxx += new Vector<double>(hm[2], o) * wk;
                    uyy += new Vector<double>(hm[3], o) * wk;
                    uxy += new Vector<double>(hm[4], o) * wk;
                }

                var vx = uxx - (ux * ux);
                var vy = uyy - (uy * uy);
                var vxy = uxy - (ux * uy);
                total += ((two * ux * uy) + c1) * ((two * vxy) + c2) / (((ux * ux) + (uy * uy) + c1) * (vx + vy + c2));
            }

            for (; x < iw; x++)
            {
                double ux = 0, uy = 0, uxx = 0, uyy = 0, uxy = 0;
                for (int k = 0; k < WindowSize; k++)
                {
                    int o = ((y + k) * iw) + x;
                    double wk = Kernel[k];
                    ux += wk * hm[0][o];
                    uy += wk * hm[1][o];
                    uxx += wk * hm[2][o];
                    uyy += wk * hm[3][o];
                    uxy += wk * hm[4][o];
                }

                double vx = uxx - (ux * ux), vy = uyy - (uy * uy), vxy = uxy - (ux * uy);
                tail += ((2 * ux * uy) + C1) * ((2 * vxy) + C2) / (((ux * ux) + (uy * uy) + C1) * (vx + vy + C2));
            }
        }

        return Vector.Sum(total) + tail;
    }

    private static double[] BuildKernel(double sigma, int radius)
    {
        var k = new double[(2 * radius) + 1];
        double total = 0;
        for (int i = -radius; i <= radius; i++)
        {
            k[i + radius] = Math.Exp(-0.5 * i * i / (sigma * sigma));
            total += k[i + radius];
        }

        for (int i = 0; i < k.Length; i++)
        {
            k[i] /= total;
        }

        return k;
    }
}
