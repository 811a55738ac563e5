using StableLayers.Judges;

namespace StableLayers.Judges.Tests;

public class CriteriaTests
{
    [Theory]
    [InlineData(0, "A")]
    [InlineData(25, "Z")]
    [InlineData(26, "AA")]
    [InlineData(27, "AB")]
    [InlineData(701, "ZZ")]
    [InlineData(702, "AAA")]
    public void LabelsRoundTrip(int index, string label)
    {
        Assert.Equal(label, CandidateLabels.Label(index));
        Assert.Equal(index, CandidateLabels.IndexOf(label));
    }

    [Fact]
    public void RewardIsTheWeightedMean()
    {
        var s = new CriterionScores(1, 0.8, 0.6, 0.4, 0.2);
        Assert.Equal(0.6, RewardWeights.Equal.Reward(s), 12);
        Assert.Equal(1.0, new RewardWeights(1, 0, 0, 0, 0).Reward(s), 12);
        Assert.Equal((2 * 0.2 + 0.8) / 3, new RewardWeights(0, 1, 0, 0, 2).Reward(s), 12);
        Assert.Throws<InvalidOperationException>(() => new RewardWeights(0, 0, 0, 0, 0).Reward(s));
    }

    [Fact]
    public void TiesCountEqualPairsAndIgnoreFailures()
    {
        Assert.Equal(0, GroupTies.Count([0.1, 0.2, 0.3]));
        Assert.Equal(3, GroupTies.Count([0.4, 0.4, 0.4, null]));
        Assert.Equal(2, GroupTies.Count([0.4, 0.4, 0.6, 0.6, null, null]));
    }

    [Fact]
    public void BucketsAreIntegersOfFifths()
    {
        Assert.Equal(new CriterionScores(0, 0.2, 0.6, 1, 1), new CriterionScores(0.05, 0.25, 0.55, 0.95, 1.3).Bucketed());
    }
}
