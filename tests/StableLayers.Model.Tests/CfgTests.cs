using StableLayers.Model.Schedulers;
using static TorchSharp.torch;

namespace StableLayers.Model.Tests;

public class CfgTests
{
    [Fact]
    public void ScaleOneGivesTheConditionalAndScaleZeroTheNegative()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        var cond = randn(2, 7, 64);
        var neg = randn(2, 7, 64);
        Assert.True(TrueCfg.Combine(cond, neg, 1f, false).allclose(cond, atol: 1e-6));
        Assert.True(TrueCfg.Combine(cond, neg, 0f, false).allclose(neg, atol: 1e-6));
        Assert.True(TrueCfg.Combine(cond, neg, 1f, true).allclose(cond, atol: 1e-5));
    }

    [Fact]
    public void GuidanceExtrapolatesFromNegativeTowardsConditional()
    {
        using var scope = NewDisposeScope();
        var cond = tensor(new float[] { 1f, 2f }).reshape(1, 1, 2);
        var neg = tensor(new float[] { 0f, 1f }).reshape(1, 1, 2);
        var v = TrueCfg.Combine(cond, neg, 4f, false);
        Assert.True(v.allclose(tensor(new float[] { 4f, 5f }).reshape(1, 1, 2)));
    }

    [Fact]
    public void NormalizeKeepsEachTokensNormEqualToTheConditionals()
    {
        using var scope = NewDisposeScope();
        manual_seed(6);
        var cond = randn(2, 9, 64);
        var neg = randn(2, 9, 64);
        var plain = TrueCfg.Combine(cond, neg, 4f, false);
        var normalized = TrueCfg.Combine(cond, neg, 4f, true);
        Assert.True(normalized.norm(-1).allclose(cond.norm(-1), rtol: 1e-5));
        // direction is the plain combination's
        var cos = (normalized * plain).sum(-1) / (normalized.norm(-1) * plain.norm(-1));
        Assert.True(cos.allclose(ones_like(cos), atol: 1e-5));
    }

    [Fact]
    public void ActiveOnlyAboveScaleOneWithNegativePrompt()
    {
        Assert.True(TrueCfg.IsActive(4f, true));
        Assert.False(TrueCfg.IsActive(1f, true));
        Assert.False(TrueCfg.IsActive(4f, false));
    }

    [Fact]
    public void MismatchedShapesAreRejected()
    {
        using var scope = NewDisposeScope();
        Assert.Throws<ArgumentException>(() => TrueCfg.Combine(zeros(1, 2, 64), zeros(1, 3, 64), 2f, false));
    }
}
