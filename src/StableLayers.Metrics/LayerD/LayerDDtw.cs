namespace StableLayers.Metrics.LayerD;

/// <summary>
/// LayerD's <c>dynamic_time_warping</c> (layerd/evaluation/dtw.py, step 1, const 0): accumulated cost
/// D[i,j] = C[i,j] + min(D[i-1,j], D[i,j-1], D[i-1,j-1]) and a back-trace from (n-1, m-1) that prefers, on ties,
/// the diagonal, then (i-1, j), then (i, j-1); along the first row/column it walks straight to (0,0).
/// </summary>
internal static class LayerDDtw
{
    /// <summary>The warping path as (pred index, gt index) pairs from (0,0) to (n-1,m-1).</summary>
    public static List<(int I, int J)> Path(double[,] cost)
    {
        int n = cost.GetLength(0), m = cost.GetLength(1);
        var d = new double[n, m];
        d[0, 0] = cost[0, 0];
        for (int i = 1; i < n; i++)
        {
            d[i, 0] = d[i - 1, 0] + cost[i, 0];
        }

        for (int j = 1; j < m; j++)
        {
            d[0, j] = d[0, j - 1] + cost[0, j];
        }

        for (int i = 1; i < n; i++)
        {
            for (int j = 1; j < m; j++)
            {
                d[i, j] = cost[i, j] + PyMin3(d[i - 1, j], d[i, j - 1], d[i - 1, j - 1]);
            }
        }

        var path = new List<(int, int)>(n + m) { (n - 1, m - 1) };
        int a = n - 1, b = m - 1;
        while (true)
        {
            if (a <= 0 && b <= 0)
            {
                break;
            }
            else if (a == 0)
            {
                b--;
            }
            else if (b == 0)
            {
                a--;
            }
            else if (d[a - 1, b - 1] <= d[a - 1, b] && d[a - 1, b - 1] <= d[a, b - 1])
            {
                a--;
                b--;
            }
            else if (d[a - 1, b] <= d[a - 1, b - 1] && d[a - 1, b] <= d[a, b - 1])
            {
                a--;
            }
            else
            {
                b--;
            }

            path.Add((a, b));
        }

        path.Reverse();
        return path;
    }

    /// <summary>Python's builtin min of three floats (the first smallest wins; values only matter here).</summary>
    private static double PyMin3(double x, double y, double z)
    {
        double r = x;
        if (y < r)
        {
            r = y;
        }

        if (z < r)
        {
            r = z;
        }

        return r;
    }
}
