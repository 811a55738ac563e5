using StableLayers.Core.Imaging;
using StableLayers.Core.Layers;
using StableLayers.Judges.Vlm;

namespace StableLayers.Judges.Tests;

public class VlmUnitTests
{
    private const string Good = "{\"semantic_separation\": 5, \"alpha_cleanliness\": 4, \"background_inpainting\": 3, \"feature_distribution\": 2, \"content_validity\": 0}";

    [Theory]
    [InlineData(Good)]
    [InlineData("```json\n" + Good + "\n```")]
    [InlineData("Sure! Here you go:\n" + Good + "\nThe background {is} fine.")]
    [InlineData("{\"semantic_separation\": \"5\", \"alpha_cleanliness\": \" 4 \", \"background_inpainting\": 3.0, \"feature_distribution\": \"2\", \"content_validity\": 0, \"note\": \"x\"}")]
    [InlineData("{\"Semantic_Separation\": 5, \"alpha_cleanliness\": 4, \"background_inpainting\": 3, \"feature_distribution\": 2, \"content_validity\": 0}")]
    public void RubricRepliesParseTolerantly(string reply) => Assert.Equal([5, 4, 3, 2, 0], VlmReplyParser.ParseRubric(reply));

    [Theory]
    [InlineData("no json here")]
    [InlineData("{\"semantic_separation\": 5, \"alpha_cleanliness\": 4, \"background_inpainting\": 3, \"feature_distribution\": 2}")]
    [InlineData("{\"semantic_separation\": 6, \"alpha_cleanliness\": 4, \"background_inpainting\": 3, \"feature_distribution\": 2, \"content_validity\": 0}")]
    [InlineData("{\"semantic_separation\": -1, \"alpha_cleanliness\": 4, \"background_inpainting\": 3, \"feature_distribution\": 2, \"content_validity\": 0}")]
    [InlineData("{\"semantic_separation\": 3.5, \"alpha_cleanliness\": 4, \"background_inpainting\": 3, \"feature_distribution\": 2, \"content_validity\": 0}")]
    [InlineData("{\"semantic_separation\": \"high\", \"alpha_cleanliness\": 4, \"background_inpainting\": 3, \"feature_distribution\": 2, \"content_validity\": 0}")]
    [InlineData("{\"semantic_separation\": 5, \"alpha_cleanliness\": 4,")]
    public void InvalidRubricRepliesAreRejected(string reply) => Assert.Throws<VlmReplyException>(() => VlmReplyParser.ParseRubric(reply));

    private static string Row(string label, int v = 50) =>
        $"{{\"label\": \"{label}\", \"semantic_separation\": {v}, \"alpha_cleanliness\": 1, \"background_inpainting\": 2, \"feature_distribution\": 3, \"content_validity\": 100}}";

    [Fact]
    public void GridRepliesValidateLabels()
    {
        var ok = VlmReplyParser.ParseGrid($"```\n{{\"candidates\": [{Row("B", 70)}, {Row("a")}]}}\n```", ["A", "B"]);
        Assert.Equal([50, 1, 2, 3, 100], ok["A"]);
        Assert.Equal(70, ok["B"][0]);
        Assert.Throws<VlmReplyException>(() => VlmReplyParser.ParseGrid($"{{\"candidates\": [{Row("A")}, {Row("C")}]}}", ["A", "B"]));
        Assert.Throws<VlmReplyException>(() => VlmReplyParser.ParseGrid($"{{\"candidates\": [{Row("A")}, {Row("A")}]}}", ["A", "B"]));
        Assert.Throws<VlmReplyException>(() => VlmReplyParser.ParseGrid($"{{\"candidates\": [{Row("A")}]}}", ["A", "B"]));
        Assert.Throws<VlmReplyException>(() => VlmReplyParser.ParseGrid($"{{\"candidates\": [{Row("A", 101)}, {Row("B")}]}}", ["A", "B"]));
        Assert.Throws<VlmReplyException>(() => VlmReplyParser.ParseGrid($"{{\"rows\": [{Row("A")}, {Row("B")}]}}", ["A", "B"]));
    }

    [Fact]
    public void GridHasTheExpectedLayout()
    {
        const int cell = 40;
        var red = RgbaImage.Filled(20, 10, 255, 0, 0, 255);
        var clear = new RgbaImage(20, 10);
        var blue = RgbaImage.Filled(20, 10, 0, 0, 255, 255);
        var grid = CalibrationGrid.Render([("A", new LayerStack(red, clear)), ("B", new LayerStack(blue, clear, red))], cell);
        var layout = new GridLayout(2, 3, cell);
        Assert.Equal((layout.Gap + layout.LabelWidth + layout.Gap + (3 * (cell + layout.Gap)), layout.Gap + (2 * (cell + layout.Gap))), (grid.Width, grid.Height));
        Assert.Equal((layout.Width, layout.Height), (grid.Width, grid.Height));

        Assert.Equal(GridLayout.GutterColour, Rgb(grid, 0, 0));
        var (x, y) = layout.CellOrigin(0, 0);
        Assert.Equal(((byte)255, (byte)0, (byte)0), Rgb(grid, x + (cell / 2), y + (cell / 2)));
        Assert.Equal(((byte)255, (byte)255, (byte)255), Rgb(grid, x + (cell / 2), y + 2)); // letterbox above a 2:1 layer is white
        (x, y) = layout.CellOrigin(0, 1);
        Assert.Equal(((byte)255, (byte)255, (byte)255), Rgb(grid, x + (cell / 2), y + (cell / 2))); // transparent layer on white
        (x, y) = layout.CellOrigin(0, 2);
        Assert.Equal(((byte)255, (byte)255, (byte)255), Rgb(grid, x + (cell / 2), y + (cell / 2))); // row A has no third layer
        (x, y) = layout.CellOrigin(1, 0);
        Assert.Equal(((byte)0, (byte)0, (byte)255), Rgb(grid, x + (cell / 2), y + (cell / 2)));
        (x, y) = layout.CellOrigin(1, 2);
        Assert.Equal(((byte)255, (byte)0, (byte)0), Rgb(grid, x + (cell / 2), y + (cell / 2)));
        Assert.Equal(GridLayout.GutterColour, Rgb(grid, x - 1, y + 5));

        // Labels: dark text on a white cell, different glyphs per row.
        int darkA = Dark(grid, layout.LabelRect(0)), darkB = Dark(grid, layout.LabelRect(1));
        Assert.InRange(darkA, 20, layout.LabelWidth * cell / 2);
        Assert.InRange(darkB, 20, layout.LabelWidth * cell / 2);
        Assert.NotEqual(Crop(grid, layout.LabelRect(0)), Crop(grid, layout.LabelRect(1)));
        var (lx, ly, _, _) = layout.LabelRect(0);
        Assert.Equal(((byte)255, (byte)255, (byte)255), Rgb(grid, lx + 1, ly + 1));
    }

    private static (byte, byte, byte) Rgb(RgbaImage img, int x, int y)
    {
        int i = ((y * img.Width) + x) * 4;
        return (img.Pixels[i], img.Pixels[i + 1], img.Pixels[i + 2]);
    }

    private static int Dark(RgbaImage img, (int X, int Y, int W, int H) r)
    {
        int n = 0;
        for (int y = r.Y; y < r.Y + r.H; y++)
        {
            for (int x = r.X; x < r.X + r.W; x++)
            {
                var (a, b, c) = Rgb(img, x, y);
                n += a + b + c < 3 * 96 ? 1 : 0;
            }
        }

        return n;
    }

    private static string Crop(RgbaImage img, (int X, int Y, int W, int H) r)
    {
        var sb = new System.Text.StringBuilder();
        for (int y = r.Y; y < r.Y + r.H; y++)
        {
            for (int x = r.X; x < r.X + r.W; x++)
            {
                sb.Append(Rgb(img, x, y).Item1 < 128 ? '#' : '.');
            }
        }

        return sb.ToString();
    }

    [Fact]
    public void RowsThatFitRespectBothLimits()
    {
        var one = new GridLayout(1, 4, 64);
        Assert.Equal(3, GridLayout.RowsThatFit(4, 64, new GridLayout(3, 4, 64).Pixels, 8));
        Assert.Equal(2, GridLayout.RowsThatFit(4, 64, long.MaxValue, 2));
        Assert.Equal(0, GridLayout.RowsThatFit(4, 64, one.Pixels - 1, 8));
    }

    [Fact]
    public void ChunksCoverEveryCandidateWithTheAnchorInEach()
    {
        for (int n = 1; n <= 20; n++)
        {
            for (int rows = 2; rows <= 6; rows++)
            {
                int[] candidates = Enumerable.Range(0, n).Select(i => i * 2).ToArray();
                int anchor = candidates[n / 2];
                var plan = CalibrationChunks.Plan(candidates, anchor, rows);
                Assert.All(plan, c => Assert.Equal(anchor, c[0]));
                Assert.All(plan, c => Assert.InRange(c.Count, Math.Min(2, n), rows));
                var others = plan.SelectMany(c => c.Skip(1)).ToList();
                Assert.Equal(candidates.Where(c => c != anchor).Order(), others.Order());
                Assert.Equal(n <= rows ? 1 : (n - 1 + rows - 2) / (rows - 1), plan.Count);
            }
        }
    }

    [Fact]
    public void RescaleShiftsEachChunkOntoTheAnchorsMean()
    {
        IReadOnlyList<IReadOnlyList<int>> plan = [[0, 1], [0, 2]];
        IReadOnlyList<IReadOnlyDictionary<int, double[]>> chunks =
        [
            new Dictionary<int, double[]> { [0] = [40, 40, 40, 40, 40], [1] = [60, 99, 0, 40, 50] },
            new Dictionary<int, double[]> { [0] = [60, 60, 60, 60, 60], [2] = [70, 50, 10, 60, 50] },
        ];
        var r = VlmJudge.Rescale(plan, chunks, 0);
        Assert.Equal([50, 50, 50, 50, 50], r[0]);
        Assert.Equal([70, 100, 10, 50, 60], r[1]); // +10, clamped at 100
        Assert.Equal([60, 40, 0, 50, 40], r[2]); // -10, clamped at 0
    }

    [Fact]
    public void ConcurrentCacheWritersLeaveOneValidEntry()
    {
        string dir = VlmTestData.TempDir();
        var cache = new JudgementCache(dir);
        string key = JudgementCache.Key(["a", "b"]);
        Assert.NotEqual(key, JudgementCache.Key(["ab"]));
        Parallel.For(0, 32, i => cache.Write(new CachedJudgement
        {
            Key = key,
            Kind = "rubric",
            Model = "m",
            Endpoint = "http://x",
            Prompt = "rubric.v1",
            Scores = [i % 6, 1, 2, 3, 4],
        }));
        var entry = cache.TryRead(key, e => e.Scores is { Length: 5 });
        Assert.NotNull(entry);
        Assert.Single(Directory.GetFiles(dir, "*", SearchOption.AllDirectories));
        Assert.Null(cache.TryRead(JudgementCache.Key(["missing"]), _ => true));
        Assert.Null(cache.TryRead(key, _ => false)); // fails validation -> ignored
        Assert.Equal(1, cache.CorruptEntries);
    }

    [Fact]
    public void LogitExpectationUsesDigitAlternatives()
    {
        string text = "{\"semantic_separation\":3,\"alpha_cleanliness\":5,\"background_inpainting\":0,\"feature_distribution\":1,\"content_validity\":2}";
        var tokens = new List<TokenLogprob>();
        foreach (char ch in text)
        {
            tokens.Add(new TokenLogprob(ch.ToString(), ch == '3' ? [("3", Math.Log(0.5)), ("4", Math.Log(0.25)), ("x", Math.Log(0.25))] : [(ch.ToString(), 0.0)]));
        }

        double[] r = LogitScores.Expected(text, tokens, [3, 5, 0, 1, 2]);
        Assert.Equal((3 * 0.5 + 4 * 0.25) / 0.75, r[0], 12);
        Assert.Equal([5.0, 0, 1, 2], r[1..]);
        Assert.Equal([3.0, 5, 0, 1, 2], LogitScores.Expected(text, [], [3, 5, 0, 1, 2]));
    }

    [Fact]
    public void PromptsAreVersionedAndFilled()
    {
        var rubric = VlmPrompts.Rubric();
        Assert.Equal("rubric.v1", rubric.Id);
        Assert.All(Criteria.Keys, k => Assert.Contains(k, rubric.Text, StringComparison.Ordinal));
        Assert.Equal(64, rubric.Hash.Length);
        Assert.Throws<InvalidOperationException>(() => rubric.Render(new Dictionary<string, string>()));
        Assert.Throws<ArgumentException>(() => VlmPrompts.Load("rubric", "v999"));
        Assert.Equal("http://h:1/v1", VlmJudge.PublicEndpoint(new Uri("http://user:pw@h:1/v1/?token=abc")));
    }
}
