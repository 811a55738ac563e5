using StableLayers.Core;

namespace StableLayers.Training.Reporting;

/// <summary>Line plots of training curves as PNG (ScottPlot, headless).</summary>
public static class LossCurvePlot
{
    /// <summary>One series per entry; x is the step. A moving average is drawn over noisy raw values.</summary>
    public static void Save(string path, string title, IReadOnlyDictionary<string, IReadOnlyList<(long Step, double Value)>> series, bool logY = true, int width = 900, int height = 500) =>
        AtomicFile.WriteAllBytes(path, Render(title, series, logY, width, height));

    /// <summary>The plot as PNG bytes.</summary>
    public static byte[] Render(string title, IReadOnlyDictionary<string, IReadOnlyList<(long Step, double Value)>> series, bool logY = true, int width = 900, int height = 500, string? yLabel = null, int pointsPerWindow = 50)
    {
        ArgumentNullException.ThrowIfNull(series);
        var plot = new ScottPlot.Plot();
        foreach (var (name, points) in series)
        {
            if (points.Count == 0)
            {
                continue;
            }

            var xs = points.Select(p => (double)p.Step).ToArray();
            var ys = Smooth(points.Select(p => p.Value).ToArray(), Math.Max(1, points.Count / pointsPerWindow));
            if (logY)
            {
                ys = ys.Select(v => Math.Log10(Math.Max(v, 1e-8))).ToArray();
            }

            var line = plot.Add.Scatter(xs, ys);
            line.LegendText = name;
            line.MarkerSize = 0;
        }

        plot.Title(title);
        plot.XLabel("step");
        plot.YLabel(yLabel ?? (logY ? "log10(value), moving average" : "value, moving average"));
        plot.ShowLegend();
        return plot.GetImageBytes(width, height, ScottPlot.ImageFormat.Png);
    }

    private static double[] Smooth(double[] v, int window)
    {
        var result = new double[v.Length];
        double sum = 0;
        for (int i = 0; i < v.Length; i++)
        {
            sum += v[i];
            if (i >= window)
            {
                sum -= v[i - window];
            }

            result[i] = sum / Math.Min(i + 1, window);
        }

        return result;
    }
}
