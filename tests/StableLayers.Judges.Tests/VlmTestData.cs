using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges.Vlm;

namespace StableLayers.Judges.Tests;

internal static class VlmTestData
{
    public const int Size = 16;

    /// <summary>A group of <paramref name="count"/> candidates: an opaque background plus 1-2 coloured squares, different per candidate.</summary>
    public static JudgeGroup Group(int count, string id = "g1")
    {
        var input = RgbaImage.Filled(Size, Size, 200, 180, 40, 255);
        var candidates = new List<LayerStack>();
        for (int c = 0; c < count; c++)
        {
            var bg = RgbaImage.Filled(Size, Size, (byte)(30 + (37 * c % 200)), (byte)(90 + (11 * c)), 120, 255);
            var fg = new RgbaImage(Size, Size);
            int side = 3 + (c % 9);
            for (int y = 0; y < side; y++)
            {
                for (int x = 0; x < side; x++)
                {
                    int i = ((y * Size) + x) * 4;
                    fg.Pixels[i] = (byte)(250 - (19 * c % 200));
                    fg.Pixels[i + 1] = 10;
                    fg.Pixels[i + 2] = (byte)(60 + (c * 13 % 150));
                    fg.Pixels[i + 3] = 255;
                }
            }

            candidates.Add(c % 2 == 0 ? new LayerStack(bg, fg) : new LayerStack(bg, fg, Shifted(fg, c)));
        }

        return new JudgeGroup(id, input, candidates);
    }

    private static RgbaImage Shifted(RgbaImage fg, int c)
    {
        var s = new RgbaImage(fg.Width, fg.Height);
        for (int y = 0; y < fg.Height; y++)
        {
            for (int x = 0; x < fg.Width; x++)
            {
                int sx = (x + 8 + c) % fg.Width;
                Array.Copy(fg.Pixels, ((y * fg.Width) + x) * 4, s.Pixels, ((y * fg.Width) + sx) * 4, 4);
            }
        }

        for (int i = 0; i < s.Pixels.Length; i += 4)
        {
            s.Pixels[i + 1] = 200;
        }

        return s;
    }

    /// <summary>What the fake VLM answers in phase 1 for a candidate, recomputed locally (0..5 integers).</summary>
    public static int[] ExpectedPhase1(JudgeGroup g, int i) =>
        FakeRubric.Phase1(g.Input, g.Candidates[i].Images.Select(l => Compositor.FlattenOnWhite([l])).ToArray());

    public static VlmJudgeOptions Options(FakeVlmServer server) => new()
    {
        Endpoint = server.BaseUrl,
        Model = "fake-vlm",
        ApiKeyEnv = "STABLELAYERS_TEST_NO_SUCH_KEY",
        MaxConcurrency = 4,
        Timeout = TimeSpan.FromSeconds(5),
        MaxRetries = 2,
        RetryBaseDelay = TimeSpan.FromMilliseconds(5),
        RetryMaxDelay = TimeSpan.FromMilliseconds(50),
        GridCellSize = 32,
    };

    public static string TempDir()
    {
        string d = Path.Combine(Path.GetTempPath(), "sl-vlm-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }
}
