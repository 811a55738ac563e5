namespace StableLayers.Metrics;

/// <summary>
/// Minimum-cost one-to-one assignment on a rectangular cost matrix (the Hungarian method in its
/// shortest-augmenting-path form, O(n^2 m)). Matches scipy.optimize.linear_sum_assignment's optimum.
/// </summary>
public static class LinearAssignment
{
    /// <summary>Returns pairs (row, col) covering min(rows, cols) rows or columns, sorted by row.</summary>
    public static (int Row, int Col)[] Solve(double[,] cost)
    {
        ArgumentNullException.ThrowIfNull(cost);
        int rows = cost.GetLength(0), cols = cost.GetLength(1);
        if (rows == 0 || cols == 0)
        {
            return [];
        }

        bool transpose = rows > cols;
        int n = transpose ? cols : rows; // the smaller side is assigned fully
        int m = transpose ? rows : cols;
        double C(int i, int j) => transpose ? cost[j, i] : cost[i, j];
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < cols; j++)
            {
                if (!double.IsFinite(cost[i, j]))
                {
                    throw new ArgumentException($"cost[{i},{j}] is not finite", nameof(cost));
                }
            }
        }

        // 1-based potentials u (rows), v (cols); p[j] = row matched to column j (0 = none).
        var u = new double[n + 1];
        var v = new double[m + 1];
        var p = new int[m + 1];
        var way = new int[m + 1];
        var minv = new double[m + 1];
        var used = new bool[m + 1];
        for (int i = 1; i <= n; i++)
        {
            p[0] = i;
            int j0 = 0;
            Array.Fill(minv, double.PositiveInfinity);
            Array.Fill(used, false);
            do
            {
                used[j0] = true;
                int i0 = p[j0], j1 = 0;
                double delta = double.PositiveInfinity;
                for (int j = 1; j <= m; j++)
                {
                    if (used[j])
                    {
                        continue;
                    }

                    double cur = C(i0 - 1, j - 1) - u[i0] - v[j];
                    if (cur < minv[j])
                    {
                        minv[j] = cur;
                        way[j] = j0;
                    }

                    if (minv[j] < delta)
                    {
                        delta = minv[j];
                        j1 = j;
                    }
                }

                for (int j = 0; j <= m; j++)
                {
                    if (used[j])
                    {
                        u[p[j]] += delta;
                        v[j] -= delta;
                    }
                    else
                    {
                        minv[j] -= delta;
                    }
                }

                j0 = j1;
            }
            while (p[j0] != 0);

            do
            {
                int j1 = way[j0];
                p[j0] = p[j1];
                j0 = j1;
            }
            while (j0 != 0);
        }

        var pairs = new List<(int, int)>(n);
        for (int j = 1; j <= m; j++)
        {
            if (p[j] != 0)
            {
                pairs.Add(transpose ? (j - 1, p[j] - 1) : (p[j] - 1, j - 1));
            }
        }

        return pairs.OrderBy(t => t.Item1).ToArray();
    }
}
