namespace StableLayers.Metrics.LayerD;

/// <summary>
/// numpy's float64 <c>np.add.reduce</c> / <c>np.mean</c> of a 1-D contiguous array: pairwise summation with
/// 8 partial sums (blocks of up to 128), so results are bit-identical to LayerD's <c>np.mean(list)</c>.
/// </summary>
internal static class NumpySum
{
    private const int BlockSize = 128;

    public static double Mean(ReadOnlySpan<double> values) => Sum(values) / values.Length;

    public static double Sum(ReadOnlySpan<double> a)
    {
        int n = a.Length;
        if (n < 8)
        {
            double res = 0.0;
            for (int i = 0; i < n; i++)
            {
                res += a[i];
            }

            return res;
        }

        if (n <= BlockSize)
        {
            Span<double> r = stackalloc double[8];
            a[..8].CopyTo(r);
            int i = 8;
            for (; i < n - (n % 8); i += 8)
            {
                for (int j = 0; j < 8; j++)
                {
                    r[j] += a[i + j];
                }
            }

            double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            for (; i < n; i++)
            {
                res += a[i];
            }

            return res;
        }

        int n2 = n / 2;
        n2 -= n2 % 8;
        return Sum(a[..n2]) + Sum(a[n2..]);
    }
}
