using System.Globalization;
using System.Text;
using StableLayers.Metrics;

namespace StableLayers.Judges;

/// <summary>
/// One judged candidate with its ground-truth metrics: the unit of a judge-vs-metrics agreement study.
/// <paramref name="Group"/> names the group it was judged in (several predictions of one input), if any.
/// </summary>
public sealed record JudgedSample(string Id, CriterionScores Scores, double Reward, SampleMetrics Metrics, string? Group = null)
{
    /// <summary>From a judgement: its calibrated scores when present, else phase 1; null for a failed judgement.</summary>
    public static JudgedSample? From(string id, CandidateJudgement judgement, SampleMetrics metrics)
    {
        ArgumentNullException.ThrowIfNull(judgement);
        var scores = judgement.Calibrated ?? judgement.Phase1;
        return judgement.Failed || scores is null ? null : new JudgedSample(id, scores, judgement.Reward!.Value, metrics);
    }
}

/// <summary>Spearman's rho of one judge score against one metric over the samples where both are defined.</summary>
public sealed record AgreementCell(string Score, string Metric, double? Rho, int N);

/// <summary>
/// How well a judge's scores rank samples the way the ground-truth metrics do: Spearman rank correlation
/// (Pearson correlation of average ranks, so ties get the mean of the ranks they span) for every
/// (criterion or reward, metric) pair. Lower-is-better metrics (L1 errors, bad layers) should correlate negatively
/// with a good judge, higher-is-better ones (SSIM, evenness) positively.
/// </summary>
public static class JudgeAgreement
{
    /// <summary>The metrics.json names compared by default.</summary>
    public static IReadOnlyList<string> DefaultMetrics { get; } =
        ["best_match_l1", "recon_l1", "bad_layers", "layer0_ssim", "layer0_inpaint_l1", "evenness"];

    /// <summary>The judge scores compared: the five criterion keys, then "reward".</summary>
    public static IReadOnlyList<string> ScoreNames { get; } = [.. Criteria.Keys, "reward"];

    /// <summary>One cell per (score, metric), scores in <see cref="ScoreNames"/> order; samples where the metric is null are left out of that cell.</summary>
    public static IReadOnlyList<AgreementCell> Compute(IReadOnlyList<JudgedSample> samples, IReadOnlyList<string>? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(samples);
        var rows = Rows(samples);
        return Cells(metrics, (score, metric) =>
        {
            var (xs, ys) = Pairs(rows, score, metric);
            return new AgreementCell(score, metric, Spearman(xs, ys), xs.Count);
        });
    }

    /// <summary>
    /// The ranking GRPO actually uses: Spearman's rho inside each group (predictions of one input, by
    /// <see cref="JudgedSample.Group"/>), averaged over the groups where it is defined; N is that number of groups.
    /// Pooled over designs (<see cref="Compute"/>) a judge can look good by telling easy inputs from hard ones while
    /// ranking the candidates of each input no better than chance. Samples without a group are left out.
    /// </summary>
    public static IReadOnlyList<AgreementCell> ComputeWithinGroups(IReadOnlyList<JudgedSample> samples, IReadOnlyList<string>? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(samples);
        var groups = Rows(samples.Where(s => s.Group is not null).ToList()).GroupBy(r => r.Sample.Group!, StringComparer.Ordinal).Select(g => g.ToList()).ToList();
        return Cells(metrics, (score, metric) =>
        {
            var rhos = groups.Select(g => Pairs(g, score, metric)).Select(p => Spearman(p.X, p.Y)).OfType<double>().ToList();
            return new AgreementCell(score, metric, rhos.Count == 0 ? null : rhos.Average(), rhos.Count);
        });
    }

    private static List<AgreementCell> Cells(IReadOnlyList<string>? metrics, Func<string, string, AgreementCell> cell) =>
        [.. ScoreNames.SelectMany(score => (metrics ?? DefaultMetrics).Select(metric => cell(score, metric)))];

    /// <summary>A sample with its metrics by name, looked up once rather than once per (score, metric) cell.</summary>
    private sealed record Row(JudgedSample Sample, Dictionary<string, double?> Metrics);

    private static List<Row> Rows(IReadOnlyList<JudgedSample> samples) =>
        [.. samples.Select(s => new Row(s, s.Metrics.Scalars().ToDictionary(m => m.Name, m => m.Value, StringComparer.Ordinal)))];

    /// <summary>(score, metric) pairs of the samples where the metric is defined and finite.</summary>
    private static (List<double> X, List<double> Y) Pairs(IReadOnlyList<Row> rows, string score, string metric)
    {
        int c = Criteria.Keys.ToList().IndexOf(score);
        var xs = new List<double>();
        var ys = new List<double>();
        foreach (var row in rows)
        {
            if (row.Metrics.TryGetValue(metric, out double? value) && value is double v && double.IsFinite(v))
            {
                xs.Add(c >= 0 ? row.Sample.Scores[Criteria.All[c]] : row.Sample.Reward);
                ys.Add(v);
            }
        }

        return (xs, ys);
    }

    /// <summary>Spearman's rho with average ranks for ties; null when there are fewer than 2 pairs or either side is constant.</summary>
    public static double? Spearman(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        if (x.Count != y.Count)
        {
            throw new ArgumentException($"{x.Count} x values but {y.Count} y values");
        }

        return x.Count < 2 ? null : Pearson(AverageRanks(x), AverageRanks(y));
    }

    /// <summary>1-based ranks in ascending order; tied values all get the mean of the ranks they occupy.</summary>
    public static double[] AverageRanks(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        int n = values.Count;
        var order = Enumerable.Range(0, n).OrderBy(i => values[i]).ThenBy(i => i).ToArray();
        var ranks = new double[n];
        int start = 0;
        while (start < n)
        {
            int end = start;
            while (end + 1 < n && values[order[end + 1]] == values[order[start]])
            {
                end++;
            }

            double rank = ((start + end) / 2.0) + 1;
            for (int k = start; k <= end; k++)
            {
                ranks[order[k]] = rank;
            }

            start = end + 1;
        }

        return ranks;
    }

    /// <summary>Pearson correlation; null when either side has zero variance.</summary>
    public static double? Pearson(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        int n = x.Count;
        double mx = x.Average(), my = y.Average();
        double sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < n; i++)
        {
            double dx = x[i] - mx, dy = y[i] - my;
            sxy += dx * dy;
            sxx += dx * dx;
            syy += dy * dy;
        }

        return sxx <= 0 || syy <= 0 ? null : sxy / Math.Sqrt(sxx * syy);
    }

    /// <summary>A plain-text table: one row per score, one column per metric, "rho (n)" in each cell, "-" where undefined.</summary>
    public static string Format(IReadOnlyList<AgreementCell> cells, string title = "spearman rho (n)")
    {
        ArgumentNullException.ThrowIfNull(cells);
        var metrics = cells.Select(c => c.Metric).Distinct().ToList();
        var scores = cells.Select(c => c.Score).Distinct().ToList();
        int width = Math.Max(22, title.Length + 1);
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{title.PadRight(width)}");
        foreach (var m in metrics)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{m,19}");
        }

        sb.AppendLine();
        foreach (var s in scores)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{s.PadRight(width)}");
            foreach (var m in metrics)
            {
                var cell = cells.First(c => c.Score == s && c.Metric == m);
                string text = cell.Rho is double r ? string.Create(CultureInfo.InvariantCulture, $"{r:+0.000;-0.000} ({cell.N})") : $"- ({cell.N})";
                sb.Append(CultureInfo.InvariantCulture, $"{text,19}");
            }

            sb.AppendLine();
        }

        return sb.ToString();
    }
}
