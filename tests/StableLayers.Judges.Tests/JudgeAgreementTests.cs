using StableLayers.Metrics;

namespace StableLayers.Judges.Tests;

public class JudgeAgreementTests
{
    [Fact]
    public void AverageRanksShareTiedRanks()
    {
        Assert.Equal([1, 2, 3], JudgeAgreement.AverageRanks([10, 20, 30]));
        Assert.Equal([3, 1, 2], JudgeAgreement.AverageRanks([5, -1, 0]));
        // 2 and 2 occupy ranks 2 and 3 -> 2.5 each; the three 7s occupy 4..6 -> 5.
        Assert.Equal([1, 2.5, 2.5, 5, 5, 5], JudgeAgreement.AverageRanks([1, 2, 2, 7, 7, 7]));
        Assert.Equal([5, 2.5, 1, 5, 2.5, 5], JudgeAgreement.AverageRanks([7, 2, 1, 7, 2, 7]));
    }

    [Fact]
    public void SpearmanWithoutTiesMatchesTheTextbookFormula()
    {
        // x ranks 1..5, y ranks [2,1,4,3,5]: d^2 = 1+1+1+1+0 = 4; rho = 1 - 6*4/(5*24) = 0.8.
        Assert.Equal(0.8, JudgeAgreement.Spearman([1, 2, 3, 4, 5], [20, 10, 40, 30, 50])!.Value, 12);
        Assert.Equal(1.0, JudgeAgreement.Spearman([1, 2, 3], [1, 4, 9])!.Value, 12); // monotone, not linear
        Assert.Equal(-1.0, JudgeAgreement.Spearman([1, 2, 3, 4], [9, 5, 2, 0])!.Value, 12);
    }

    [Fact]
    public void SpearmanWithTiesIsPearsonOfAverageRanks()
    {
        // x = [1, 2, 2, 3] -> ranks [1, 2.5, 2.5, 4]; y = [1, 3, 2, 4] -> ranks [1, 3, 2, 4].
        // Centred (mean 2.5): x' = [-1.5, 0, 0, 1.5], y' = [-1.5, 0.5, -0.5, 1.5];
        // sum x'y' = 2.25 + 2.25 = 4.5; sum x'^2 = 4.5; sum y'^2 = 5; rho = 4.5 / sqrt(22.5) = 0.948683...
        Assert.Equal(4.5 / Math.Sqrt(22.5), JudgeAgreement.Spearman([1, 2, 2, 3], [1, 3, 2, 4])!.Value, 12);
        // Ties on both sides: x = [1,1,2,2] -> [1.5,1.5,3.5,3.5]; y = [5,6,6,7] -> [1,2.5,2.5,4].
        // x' = [-1,-1,1,1], y' = [-1.5,0,0,1.5]: sum x'y' = 3; sum x'^2 = 4; sum y'^2 = 4.5; rho = 3/sqrt(18).
        Assert.Equal(3 / Math.Sqrt(18), JudgeAgreement.Spearman([1, 1, 2, 2], [5, 6, 6, 7])!.Value, 12);
    }

    [Fact]
    public void SpearmanIsUndefinedForConstantsAndTinySamples()
    {
        Assert.Null(JudgeAgreement.Spearman([1, 1, 1], [1, 2, 3]));
        Assert.Null(JudgeAgreement.Spearman([1], [2]));
        Assert.Throws<ArgumentException>(() => JudgeAgreement.Spearman([1, 2], [1]));
    }

    [Fact]
    public void ComputePairsEveryScoreWithEveryMetricAndSkipsNullMetrics()
    {
        var samples = new List<JudgedSample>();
        for (int i = 0; i < 5; i++)
        {
            double q = i / 4.0; // better sample -> higher scores, lower errors
            var scores = new CriterionScores(q, 1 - q, q * q, 0.5, q);
            samples.Add(new JudgedSample($"s{i}", scores, RewardWeights.Equal.Reward(scores), new SampleMetrics
            {
                Id = $"s{i}",
                BestMatchL1 = 0.2 - (0.03 * i),
                ReconL1 = i == 2 ? null : 0.1 - (0.01 * i),
                BadLayers = 4 - i,
                Layer0Ssim = 0.5 + (0.1 * i),
            }));
        }

        var cells = JudgeAgreement.Compute(samples, ["best_match_l1", "recon_l1", "bad_layers", "layer0_ssim"]);
        Assert.Equal(6 * 4, cells.Count);
        AgreementCell Cell(string s, string m) => cells.Single(c => c.Score == s && c.Metric == m);
        Assert.Equal(-1.0, Cell("semantic_separation", "best_match_l1").Rho!.Value, 12);
        Assert.Equal(+1.0, Cell("alpha_cleanliness", "best_match_l1").Rho!.Value, 12);
        Assert.Equal(+1.0, Cell("background_inpainting", "layer0_ssim").Rho!.Value, 12);
        Assert.Null(Cell("feature_distribution", "bad_layers").Rho); // constant score
        Assert.Equal(4, Cell("content_validity", "recon_l1").N);
        Assert.Equal(5, Cell("content_validity", "bad_layers").N);
        Assert.Equal(-1.0, Cell("content_validity", "recon_l1").Rho!.Value, 12);
        // reward = (q + 1 - q + q^2 + 0.5 + q)/5 rises with q
        Assert.Equal(-1.0, Cell("reward", "bad_layers").Rho!.Value, 12);

        string table = JudgeAgreement.Format(cells);
        Assert.Contains("reward", table, StringComparison.Ordinal);
        Assert.Contains("-1.000 (4)", table, StringComparison.Ordinal);
        Assert.Contains("- (5)", table, StringComparison.Ordinal);
    }

    [Fact]
    public void WithinGroupsAveragesThePerGroupRankingWhichPoolingHides()
    {
        // Two inputs, three candidates each. The easy input has low errors and high scores, the hard one the
        // opposite, so pooled the score looks perfectly anti-correlated with the error; inside each group the
        // score ranks the candidates backwards (+1), which is what a GRPO group would see.
        var samples = new List<JudgedSample>();
        void Add(string group, int k, double score, double error) => samples.Add(new JudgedSample(
            $"{group}/s{k}", new CriterionScores(score, score, score, score, score), score,
            new SampleMetrics { Id = $"{group}/s{k}", BestMatchL1 = error }, group));
        Add("easy", 0, 0.90, 0.010);
        Add("easy", 1, 0.91, 0.020);
        Add("easy", 2, 0.92, 0.030);
        Add("hard", 0, 0.10, 0.300);
        Add("hard", 1, 0.11, 0.310);
        Add("hard", 2, 0.12, 0.320);
        Add("alone", 0, 0.5, 0.1);

        var pooled = JudgeAgreement.Compute(samples, ["best_match_l1"]).Single(c => c.Score == "reward");
        var within = JudgeAgreement.ComputeWithinGroups(samples, ["best_match_l1"]).Single(c => c.Score == "reward");
        Assert.True(pooled.Rho < -0.5, $"pooled {pooled.Rho}");
        Assert.Equal(1.0, within.Rho!.Value, 12);
        Assert.Equal(2, within.N); // "alone" is a group of one: Spearman is undefined there, so it is left out
        Assert.Contains("within-group", JudgeAgreement.Format([within], "mean within-group rho (groups)"), StringComparison.Ordinal);
    }
}
