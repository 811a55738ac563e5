using StableLayers.TestSupport;
using static StableLayers.Cli.Tests.InProcessCli;

namespace StableLayers.Cli.Tests;

public class PlanCliTests
{
    [Fact]
    public void PlansTheReleasedModelPartByPartWithAVerdictPerCard()
    {
        var (code, stdout, err) = Run("plan", "--resolution", "640", "--layers", "4", "--group-size", "8", "--checkpointing", "true");
        Assert.True(code == 0, err);
        Assert.Contains("60 blocks, width 3072 = 24 x 128", stdout);
        Assert.Contains("9600 image (6 frames x 1600)", stdout);
        Assert.Contains("20.43B params x 2 B (bf16)", stdout);
        Assert.Contains("126.9M params x 4 B", stdout);
        foreach (var card in new[] { "24 GB", "48 GB", "80 GB", "141 GB" })
        {
            Assert.Contains(stdout.Split('\n'), l => l.StartsWith(card + " ", StringComparison.Ordinal));
        }

        // Transformer weights alone (38 GiB) exceed a 24 GB card.
        Assert.Contains(stdout.Split('\n'), l => l.StartsWith("24 GB", StringComparison.Ordinal) && l.Contains("does not fit", StringComparison.Ordinal));
    }

    [Fact]
    public void ReadsAModelFolderAndItsTinyTextEncoder()
    {
        var (code, stdout, err) = Run("plan", "--config", Path.Combine(TestData.RepoRoot, "models", "tiny-base"), "--resolution", "64", "--layers", "3", "--dtype", "fp32");
        Assert.True(code == 0, err);
        Assert.Contains("plan: tiny (4 blocks", stdout);
        Assert.Contains("tiny text encoder:", stdout);
        Assert.Contains("fp32", stdout);
    }

    [Theory]
    [InlineData("--dtype", "fp8")]
    [InlineData("--resolution", "630")]
    [InlineData("--resolution", "big")]
    [InlineData("--layers", "0")]
    [InlineData("--group-size", "0")]
    [InlineData("--micro-batch", "0")]
    public void BadOptionsAreBadInput(string option, string value)
    {
        var (code, _, err) = Run("plan", option, value);
        Assert.Equal(2, code);
        Assert.StartsWith($"error: {option}:", err);
    }

    [Fact]
    public void MissingConfigIsBadInput()
    {
        var (code, _, err) = Run("plan", "--config", "/nonexistent/model.json");
        Assert.Equal(2, code);
        Assert.StartsWith("error: /nonexistent/model.json:", err);
    }
}
