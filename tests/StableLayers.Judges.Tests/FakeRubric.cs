using StableLayers.Core.Imaging;

namespace StableLayers.Judges.Tests;

/// <summary>
/// The fake VLM's deterministic "opinion", a small function of the decoded pixels. Tests recompute
/// the expected scores locally with the same functions from the images they built.
/// </summary>
public static class FakeRubric
{
    /// <summary>Phase 1: five integers 0..5 from the input and the layers-on-white images.</summary>
    public static int[] Phase1(RgbaImage input, IReadOnlyList<RgbaImage> layersOnWhite)
    {
        int n = layersOnWhite.Count;
        int mi = (int)Math.Round(MeanRgb(input, 0, input.Height));
        return Enumerable.Range(0, 5)
            .Select(j => ((int)Math.Round(MeanRgb(layersOnWhite[j % n], 0, layersOnWhite[j % n].Height)) + (7 * j) + n + mi) % 6)
            .ToArray();
    }

    /// <summary>Phase 2: per label, five integers 0..100 from the label's horizontal strip of the grid and its phase-1 scores.</summary>
    public static Dictionary<string, int[]> Grid(RgbaImage grid, IReadOnlyList<string> labels, IReadOnlyDictionary<string, double[]> phase1)
    {
        var result = new Dictionary<string, int[]>();
        for (int r = 0; r < labels.Count; r++)
        {
            int t = (int)Math.Round(MeanRgb(grid, r * grid.Height / labels.Count, (r + 1) * grid.Height / labels.Count)) % 20;
            double[] p = phase1[labels[r]];
            result[labels[r]] = Enumerable.Range(0, 5).Select(j => Math.Clamp((16 * (int)Math.Round(p[j])) + t + j, 0, 100)).ToArray();
        }

        return result;
    }

    public static double MeanRgb(RgbaImage img, int y0, int y1)
    {
        long sum = 0;
        for (int y = y0; y < y1; y++)
        {
            for (int x = 0; x < img.Width; x++)
            {
                int i = ((y * img.Width) + x) * 4;
                sum += img.Pixels[i] + img.Pixels[i + 1] + img.Pixels[i + 2];
            }
        }

        return sum / (3.0 * img.Width * Math.Max(1, y1 - y0));
    }
}
