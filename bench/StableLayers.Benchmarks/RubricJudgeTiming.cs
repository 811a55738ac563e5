using System.Diagnostics;
using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges;
using StableLayers.Judges.Rubric;

namespace StableLayers.Benchmarks;

/// <summary>
/// Times the rubric judge on one group of 8 candidates x 5 layers at 640x640, on one thread: the benchmark
/// sample's ground truth and its imperfect prediction, plus copies with the foreground shifted by 1..6 px.
/// </summary>
public static class RubricJudgeTiming
{
    public const int Candidates = 8;

    public static JudgeGroup CreateGroup()
    {
        var (pred, gt) = BenchmarkSample.Create();
        var candidates = new List<LayerStack> { gt, pred };
        for (int s = 1; candidates.Count < Candidates; s++)
        {
            var layers = gt.Images.Select((img, k) => k == 0 ? img : Shift(img, s, (s + 1) / 2)).ToArray();
            candidates.Add(new LayerStack(layers));
        }

        return new JudgeGroup("bench", gt.FlattenOnWhite(), candidates);
    }

    /// <summary>Median wall time in ms of <paramref name="repeats"/> single-threaded group judgements after a warm-up.</summary>
    public static double MedianMs(int repeats)
    {
        var group = CreateGroup();
        var judge = new RubricJudge(new JudgeOptions(), maxDegreeOfParallelism: 1);
        var first = judge.Judge(group);
        if (first.Diagnostics.Failures > 0)
        {
            throw new InvalidOperationException("a benchmark candidate failed: " + first.Candidates.First(c => c.Failed).Error);
        }

        var times = new List<double>();
        for (int i = 0; i < repeats; i++)
        {
            var sw = Stopwatch.StartNew();
            judge.Judge(group);
            times.Add(sw.Elapsed.TotalMilliseconds);
        }

        times.Sort();
        return times[times.Count / 2];
    }

    private static RgbaImage Shift(RgbaImage src, int dx, int dy)
    {
        var dst = new RgbaImage(src.Width, src.Height);
        for (int y = Math.Max(0, dy); y < Math.Min(src.Height, src.Height + dy); y++)
        {
            int sx0 = Math.Max(0, -dx), x0 = sx0 + dx, len = src.Width - Math.Abs(dx);
            Array.Copy(src.Pixels, (((y - dy) * src.Width) + sx0) * 4, dst.Pixels, ((y * src.Width) + x0) * 4, len * 4);
        }

        return dst;
    }
}
