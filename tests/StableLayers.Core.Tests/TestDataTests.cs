using StableLayers.TestSupport;

namespace StableLayers.Core.Tests;

/// <summary>Fixtures come from the repository only: users clone it without anything beside it.</summary>
public class TestDataTests
{
    [Fact]
    public void Fixtures_resolve_inside_the_repository()
    {
        var root = Path.GetFullPath(TestData.RepoRoot) + Path.DirectorySeparatorChar;
        foreach (var dir in new[] { TestData.RealPsdDev, TestData.GoldenDir, TestData.DiffusersGolden, TestData.Qwen25VlTextGolden })
        {
            Assert.StartsWith(root, dir, StringComparison.Ordinal);
        }

        Assert.Equal(13, TestData.RealPsdDevSamples.Count);
    }

    [Fact]
    public void A_path_beside_the_repository_is_refused()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => TestData.InRepo("../shared/data/real-psd-dev"));
        Assert.Contains("must come from the repository", ex.Message, StringComparison.Ordinal);
    }
}
