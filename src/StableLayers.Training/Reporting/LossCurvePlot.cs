using StableLayers.Core;

namespace StableLayers.Training.Reporting;

/// <summary>Line plots of training curves as PNG (ScottPlot, headless).</summary>
public static class LossCurvePlot
{
    /// <summary>One series per entry; x is the step. A moving average is drawn over noisy raw values.</summary>
    public static void Save(string path, string title, IReadOnlyDictionary<string, IReadOnlyList<(long Step, double Value)>> series, bool logY = true, int width = 900, int height = 500)
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
            var ys = Smooth(points.Select(p => p.Value).ToArray(), Math.Max(1, points.Count / 50));
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
        plot.YLabel(logY ? "log10(value), moving average" : "value, moving average");
        plot.ShowLegend();
        var bytes = plot.GetImageBytes(width, height, ScottPlot.ImageFormat.Png);
        AtomicFile.WriteAllBytes(path, bytes);
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
