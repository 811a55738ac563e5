using StableLayers.Core;
using StableLayers.TestSupport;
using StableLayers.Training.Grpo;

namespace StableLayers.Training.Tests;

public class GrpoConfigTests
{
    [Fact]
    public void ShippedConfigLoadsWithItsDocumentedValues()
    {
        var c = GrpoConfig.Load(Path.Combine(TestData.RepoRoot, "configs", "tiny-grpo.toml"));
        Assert.Equal(8, c.Sampling.GroupSize);
        Assert.Equal(1.2, c.Sampling.NoiseLevel);
        Assert.Equal("sum-rescale", c.Grpo.RatioMode);
        Assert.Equal(3e-4, c.Optim.LearningRate);
        Assert.Equal("rubric", c.Judge.Kind);
        Assert.Equal("models/tiny-base", c.Model.Base);
        Assert.Null(c.Problem());
    }

    [Theory]
    [InlineData("steps = 0", "steps must be at least 1")]
    [InlineData("[sampling]\ngroup_size = 1", "group_size")]
    [InlineData("[grpo]\nratio_mode = \"mean\"", "ratio_mode 'mean'")]
    [InlineData("[grpo]\nclip_rnage = 0.1", "clip_rnage")]
    [InlineData("[sampling\ngroup_size = 4", "invalid TOML")]
    [InlineData("[judge]\nkind = \"vlm\"", "needs judge.endpoint")]
    [InlineData("steps = \"ten\"", "invalid config")]
    public void BadConfigsNameTheFileAndTheProblem(string toml, string expected)
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "bad.toml");
        File.WriteAllText(path, toml);
        var e = Assert.Throws<BadInputException>(() => GrpoConfig.Load(path));
        Assert.Contains("bad.toml", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void MissingConfigIsAClearError()
    {
        var e = Assert.Throws<BadInputException>(() => GrpoConfig.Load("/nonexistent/x.toml"));
        Assert.Contains("file not found", e.Message);
    }
}
