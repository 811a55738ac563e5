using StableLayers.Core.Formats;
using StableLayers.Metrics;
using StableLayers.Model;
using StableLayers.Model.Inference;
using StableLayers.TestSupport;

namespace StableLayers.Cli.Tests;

public class ShippedModelTests
{
    [Fact]
    public void TinyBaseLoadsStrictlyAndDecomposesARealSampleCloseToItsInput()
    {
        string dir = Path.Combine(TestData.RepoRoot, "models", "tiny-base");
        Assert.Equal(dir, Commands.DecomposeCommand.DefaultModelDir());
        using var model = LayeredModel.Load(dir);
        var sample = Path.Combine(TestData.RepoRoot, "samples", "real-psd-dev", "groups");
        var input = LayeredFolder.ReadComposite(sample)!;
        var stack = new LayeredDecomposer(model).Decompose(input, new DecomposeOptions { Layers = 3, Steps = 10, Seed = 0 });
        Assert.Equal(3, stack.Count);
        Assert.Equal(input.Width, stack.Width);
        var m = DecompositionEvaluator.Evaluate("groups", stack, LayeredFolder.Read(sample), input);
        // The trained model reproduces its input roughly (through the 32 px bucket) with an opaque background.
        Assert.True(m.ReconL1 < 0.2, $"reconstruction L1 {m.ReconL1}");
        Assert.Equal(0, m.DegenerateBg);
    }
}
