namespace StableLayers.Metrics;

/// <summary>
/// Structural similarity with the settings of docs/EVALUATION.md, equal to scikit-image's
/// <c>structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
/// data_range=1, channel_axis=-1)</c>: an 11x11 Gaussian window, population covariance, K1 0.01,
/// K2 0.03, the mean taken over pixels at least 5 px from the border, averaged over channels.
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

        double total = 0;
        for (int c = 0; c < channels; c++)
        {
            total += Channel(a, b, width, height, channels, c);
        }

        return total / channels;
    }

    private static double Channel(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int w, int h, int channels, int c)
    {
        // Only interior outputs are averaged, and those never read past the border, so no padding is needed:
        // horizontal pass over all rows for interior columns, then vertical pass for interior rows.
        int iw = w - (2 * Radius);
        int ih = h - (2 * Radius);
        var hx = new double[h * iw];
        var hy = new double[h * iw];
        var hxx = new double[h * iw];
        var hyy = new double[h * iw];
        var hxy = new double[h * iw];
        for (int y = 0; y < h; y++)
        {
            int row = y * w;
            for (int x = 0; x < iw; x++)
            {
                double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
                for (int k = 0; k < WindowSize; k++)
                {
                    int idx = ((row + x + k) * channels) + c;
                    double va = a[idx], vb = b[idx], wk = Kernel[k];
                    sx += wk * va;
                    sy += wk * vb;
                    sxx += wk * va * va;
                    syy += wk * vb * vb;
                    sxy += wk * va * vb;
                }

                int o = (y * iw) + x;
                hx[o] = sx;
                hy[o] = sy;
                hxx[o] = sxx;
                hyy[o] = syy;
                hxy[o] = sxy;
            }
        }

        double sum = 0;
        for (int y = 0; y < ih; y++)
        {
            for (int x = 0; x < iw; x++)
            {
                double ux = 0, uy = 0, uxx = 0, uyy = 0, uxy = 0;
                for (int k = 0; k < WindowSize; k++)
                {
                    int o = ((y + k) * iw) + x;
                    double wk = Kernel[k];
                    ux += wk * hx[o];
                    uy += wk * hy[o];
                    uxx += wk * hxx[o];
                    uyy += wk * hyy[o];
                    uxy += wk * hxy[o];
                }

                double vx = uxx - (ux * ux);
                double vy = uyy - (uy * uy);
                double vxy = uxy - (ux * uy);
                sum += ((2 * ux * uy) + C1) * ((2 * vxy) + C2) / (((ux * ux) + (uy * uy) + C1) * (vx + vy + C2));
            }
        }

        return sum / ((double)iw * ih);
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
