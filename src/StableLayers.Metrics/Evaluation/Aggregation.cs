namespace StableLayers.Metrics.Evaluation;

/// <summary>Means and 95% percentile-bootstrap intervals of each metric, overall and by predicted layer count.</summary>
public static class Aggregation
{
    public const int DefaultResamples = 2000;

    public static SortedDictionary<string, double> Means(IEnumerable<SampleMetrics> samples) =>
        new(Collect(samples).ToDictionary(kv => kv.Key, kv => kv.Value.Average()), StringComparer.Ordinal);

    public static SortedDictionary<string, double[]> Intervals(IEnumerable<SampleMetrics> samples, int resamples = DefaultResamples, int seed = 0) =>
        new(Collect(samples).ToDictionary(kv => kv.Key, kv => BootstrapCi(kv.Value, resamples, seed)), StringComparer.Ordinal);

    /// <summary>Percentile bootstrap of the mean: [2.5%, 97.5%] of <paramref name="resamples"/> resampled means.</summary>
    public static double[] BootstrapCi(IReadOnlyList<double> values, int resamples = DefaultResamples, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0)
        {
            return [double.NaN, double.NaN];
        }

        var rng = new Random(seed);
        var means = new double[resamples];
        for (int r = 0; r < resamples; r++)
        {
            double s = 0;
            for (int i = 0; i < values.Count; i++)
            {
                s += values[rng.Next(values.Count)];
            }

            means[r] = s / values.Count;
        }

        Array.Sort(means);
        return [Percentile(means, 0.025), Percentile(means, 0.975)];
    }

    private static double Percentile(double[] sorted, double q)
    {
        // Linear interpolation between closest ranks (numpy's default).
        double pos = q * (sorted.Length - 1);
        int lo = (int)Math.Floor(pos);
        int hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + ((pos - lo) * (sorted[hi] - sorted[lo]));
    }

    private static Dictionary<string, List<double>> Collect(IEnumerable<SampleMetrics> samples)
    {
        var byName = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        foreach (var s in samples)
        {
            foreach (var (name, value) in s.Scalars())
            {
                if (value is double v && double.IsFinite(v))
                {
                    if (!byName.TryGetValue(name, out var list))
                    {
                        byName[name] = list = [];
                    }

                    list.Add(v);
                }
            }
        }

        return byName;
    }
}
